"""``charter verify`` and ``charter lineage``: offline checks with nothing but the public key.

Order: the model-signing signature over the files (names exactly which file changed, appeared or
went missing), then the DSSE signature over the statement, then the binding between them (the
statement's subject must be the root digest the file signature signs, so a statement cannot be
swapped onto other weights), then, for a LoRA adapter, its base model (the seal records the base's
content digest: the base directory is outside the adapter's files but is loaded with them), then,
when given, the constitution.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from charter.constitution import constitution_digest, load_constitution
from charter.core.errors import InputError, VerificationError
from charter.provenance.dsse import read_envelope_json, verify_envelope
from charter.provenance.keys import load_public_key
from charter.provenance.seal import (
    MODEL_SIGNATURE,
    SEAL_DIR,
    bundle_root_digest,
    hashing_config,
    read_envelope,
    unverified_statement,
)
from charter.provenance.statement import (
    ADAPTER_CONFIG,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    adapter_base_dir,
    adapter_base_name,
    base_changes,
    base_content,
    statement_digest,
)


@dataclass
class VerifiedModel:
    model_dir: str
    root_digest: str
    statement_digest: str
    statement: dict
    checks: list[str] = field(default_factory=list)

    @property
    def predicate(self) -> dict:
        return self.statement["predicate"]

    def summary_lines(self) -> list[str]:
        p = self.predicate
        c = p["constitution"]
        lines = [
            f"sealed model: {self.model_dir}",
            f"  root digest      sha256:{self.root_digest}",
            f"  statement digest sha256:{self.statement_digest}",
            f"  constitution     {c['name']} {c['version']} ({c['digest'][:23]}…)",
        ]
        ab = p.get("adapter_base")
        if ab:
            lines.append(
                f"  adapter base     {ab.get('name_or_path')} sha256:{ab['sha256'].split(':')[-1][:16]}…"
                + (" (sealed)" if ab.get("seal") else "")
            )
        base = p.get("base_model")
        if base:
            weights = (
                ("sha256:" + base["sha256"].split(":")[-1][:16] + "…") if base.get("sha256") else base.get("path", "")
            )
            lines.append(f"  base model       {base.get('spec', '')} {weights}")
        if p.get("parent"):
            lines.append(
                f"  parent           {p['parent']['path']} (statement sha256:{p['parent']['statement_digest'][:16]}…)"
            )
        for d in p.get("datasets", []):
            task = (d.get("lineage") or {}).get("task")
            lines.append(
                f"  dataset          {d['name']} sha256:{d['sha256'][:16]}…" + (f" from {task}" if task else "")
            )
        t = p.get("training") or {}
        if t:
            cfg = t.get("config", {})
            args = cfg.get("arguments", {})
            lines.append(
                f"  training         {cfg.get('method', '?')} {'LoRA' if args.get('lora') else 'full'}, "
                f"routing {'on' if args.get('routing') else 'off'}, {t.get('summary', {}).get('steps', '?')} steps"
            )
            for pid, prof in (t.get("profiles") or {}).get("principles", {}).items():
                lines.append(
                    f"    profile {pid}: entropy {prof['entropy_bits']:.2f} bits, centroid {prof['centroid_depth']:.2f}"
                )
        for e in p.get("evaluations", []):
            lines.append(f"  evaluation       {e['suite']} ({e['dir']})")
        lines += [f"  ok: {c}" for c in self.checks]
        return lines


def verify_model(
    model_dir: str | Path,
    public_key_path: str | Path,
    *,
    constitution: str | None = None,
    max_workers: int | None = None,
    _bases: tuple[str, ...] = (),
) -> VerifiedModel:
    import model_signing

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError("no such model directory", source=str(model_dir))
    public_key = load_public_key(public_key_path)
    seal_dir = model_dir / SEAL_DIR
    sig = seal_dir / MODEL_SIGNATURE
    if not sig.is_file():
        raise VerificationError(f"{model_dir} is not sealed (no {SEAL_DIR}/{MODEL_SIGNATURE})")
    checks = []
    try:
        (
            model_signing.verifying.Config()
            .set_hashing_config(hashing_config(max_workers))
            .use_elliptic_key_verifier(public_key=public_key_path)
            .verify(model_dir, sig)
        )
    except Exception as exc:  # model-signing raises ValueError and library-specific errors
        raise VerificationError(_model_signing_failure(exc)) from None
    root = bundle_root_digest(sig)
    checks.append("every model file matches the model-signing signature")

    payload = verify_envelope(read_envelope(seal_dir), public_key, what="provenance statement")
    statement = read_envelope_json(payload, what="provenance statement")
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError("provenance statement has an unexpected type")
    checks.append("provenance statement signature verifies")
    subject = statement.get("subject", [{}])[0].get("digest", {}).get("sha256")
    if subject != root:
        raise VerificationError(
            f"provenance statement is about other weights (subject sha256:{subject} ≠ signed root sha256:{root})"
        )
    checks.append("statement subject = signed root digest")
    checks += _check_adapter_base(model_dir, statement, public_key_path, max_workers, _bases)
    if constitution is not None:
        want = statement["predicate"]["constitution"]["digest"]
        got = constitution_digest(load_constitution(constitution))
        if got != want:
            raise VerificationError(f"constitution {constitution} ({got[:23]}…) is not the sealed one ({want[:23]}…)")
        checks.append(f"constitution {constitution} matches the sealed digest")
    return VerifiedModel(str(model_dir), root, statement_digest(payload), statement, checks)


def _check_adapter_base(
    model_dir: Path, statement: dict, public_key_path, max_workers, seen: tuple[str, ...]
) -> list[str]:
    """A PEFT adapter loads its base from adapter_config.json's base_model_name_or_path (a signed
    file, so the name cannot change): the base there must have the content the seal recorded, and
    a sealed base must verify with the same key."""
    name = adapter_base_name(model_dir)
    if name is None:
        return []
    recorded = (statement.get("predicate") or {}).get("adapter_base")
    if not recorded:
        raise VerificationError(
            f"{model_dir} is a LoRA adapter sealed before base binding: its seal does not record "
            f"the digest of its base model {name}, which would load unchecked; re-seal it"
        )
    base_dir = adapter_base_dir(name)
    found = base_content(base_dir)
    changes = base_changes(recorded, found) or (["weights digest"] if found["sha256"] != recorded.get("sha256") else [])
    if changes:
        raise VerificationError(
            f"the adapter's base model {name} is not the one sealed with it — "
            f"{'; '.join(changes[:6])}{'…' if len(changes) > 6 else ''}"
        )
    checks = [f"adapter base {name} matches the sealed digest ({recorded['sha256'][:23]}…)"]
    key = str(base_dir.resolve())
    if key in seen or len(seen) > 8:
        raise VerificationError(f"the adapter's base model {name} loops back through adapters")
    if (base_dir / SEAL_DIR).is_dir():
        try:
            v = verify_model(base_dir, public_key_path, max_workers=max_workers, _bases=seen + (key,))
        except VerificationError as exc:
            raise VerificationError(
                f"the adapter's base model {name} is sealed but its own seal does not verify with this key: {exc}"
            ) from None
        checks.append(f"adapter base's own seal verifies (statement sha256:{v.statement_digest[:16]}…)")
    elif (base_dir / ADAPTER_CONFIG).is_file():
        raise VerificationError(
            f"the adapter's base model {name} is itself an unsealed adapter: its own base is unchecked"
        )
    return checks


@dataclass
class SealLink:
    model_dir: Path
    statement: dict
    statement_digest: str
    verified: bool


def resolve_parent(child: Path, recorded: str) -> Path | None:
    """The parent's directory: the recorded path, else a sibling of the child with the same name
    (releases copied to another machine keep their layout; the statement digest still has to match)."""
    for candidate in (Path(recorded), child.parent / Path(recorded).name):
        if (candidate / SEAL_DIR).is_dir():
            return candidate
    return None


def walk_seals(model_dir: str | Path, public_key_path: str | Path | None = None) -> tuple[list[SealLink], str | None]:
    """The seals from this model back through its parents, each checked against the digest its child
    recorded (and verified when a key is given); plus why the walk stopped early, if it did (a parent
    that is not on this machine), else None."""
    chain: list[SealLink] = []
    current, expected_digest, seen = Path(model_dir), None, set()
    while True:
        if public_key_path:
            v = verify_model(current, public_key_path)
            statement, digest = v.statement, v.statement_digest
        else:
            try:
                statement, payload = unverified_statement(current)
            except (KeyError, ValueError, TypeError) as exc:
                raise InputError(f"unreadable provenance statement ({exc})", source=str(current / SEAL_DIR)) from None
            digest = statement_digest(payload)
        if expected_digest and digest != expected_digest:
            raise VerificationError(
                f"{current}: its statement (sha256:{digest[:16]}…) is not the one its child recorded "
                f"(sha256:{expected_digest[:16]}…): the parent was re-sealed or replaced"
            )
        chain.append(SealLink(current, statement, digest, bool(public_key_path)))
        parent = (statement.get("predicate") or {}).get("parent")
        if not parent:
            return chain, None
        if parent["path"] in seen:
            raise VerificationError("lineage loops back on itself")
        seen.add(parent["path"])
        found = resolve_parent(current, parent["path"])
        if found is None:
            return chain, (
                f"parent {parent['path']} (statement sha256:{parent['statement_digest'][:16]}…) recorded in the "
                "seal is not on this machine; copy it beside the model to read the whole lineage"
            )
        current, expected_digest = found, parent["statement_digest"]


def lineage(model_dir: str | Path, public_key_path: str | Path | None = None) -> list[dict]:
    """The chain of seals from this model back through its parents (verified when a key is given)."""
    links, truncated = walk_seals(model_dir, public_key_path)
    if truncated:
        raise VerificationError(truncated)
    chain = []
    for link in links:
        p = link.statement["predicate"]
        chain.append(
            {
                "model_dir": str(link.model_dir),
                "statement_digest": link.statement_digest,
                "root_digest": link.statement["subject"][0]["digest"]["sha256"],
                "method": ((p.get("training") or {}).get("config") or {}).get("method"),
                "constitution": f"{p['constitution']['name']} {p['constitution']['version']}",
                "base_model": p.get("base_model"),
                "verified": link.verified,
            }
        )
    return chain


def _model_signing_failure(exc: BaseException) -> str:
    """model-signing's failure, said as what changed: files changed, added or missing, or the key."""
    text = " ".join(str(exc).split())
    if "Key mismatch" in text or "public key" in text.lower() and "match" in text.lower():
        return "the model signature was not made with this public key (wrong key)"
    parts = []
    changed = re.findall(r"Hash mismatch for \\?'([^'\\]+)\\?'", text)
    if changed:
        parts.append("changed: " + ", ".join(changed))
    for label, pattern in (
        ("added", r"Extra files found in model '[^']*': ([^\]\"']+)"),
        ("missing", r"Missing files in model '[^']*': ([^\]\"']+)"),
    ):
        m = re.search(pattern, text)
        if m:
            parts.append(f"{label}: {m.group(1).strip()}")
    if parts:
        return "model files do not match the signature — " + "; ".join(parts)
    return f"the model signature does not verify: {text[:300]}"
