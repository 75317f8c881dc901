"""``charter seal``: sign every model file and the provenance statement that binds them.

Layers, each replaceable (after sigstore/model-transparency): hashing and the file signature are
model-signing's (a Sigstore bundle over a manifest of per-file sha256 digests, EC private key);
the provenance statement (statement.py) names the manifest's root digest as its subject; DSSE
(dsse.py) signs the statement with the same key. Everything lands in ``MODEL_DIR/charter-seal/``,
which the file signature leaves out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from charter.constitution import constitution_digest, constitution_text, load_constitution
from charter.core.errors import InputError, VerificationError
from charter.provenance.dsse import INTOTO, sign_envelope
from charter.provenance.keys import load_private_key
from charter.provenance.statement import (
    ADAPTER_CONFIG,
    adapter_base_dir,
    adapter_base_name,
    base_content,
    build_statement,
    dataset_entry,
    gguf_source,
    guard_entry,
    statement_digest,
    training_entry,
)

SEAL_DIR = "charter-seal"
MODEL_SIGNATURE = "model.sig"
ENVELOPE = "provenance.dsse.json"


def hashing_config(max_workers: int | None = None):
    from model_signing import hashing

    return (
        hashing.Config()
        .use_file_serialization(hashing_algorithm="sha256", max_workers=max_workers)
        .set_ignored_paths(paths=[SEAL_DIR], ignore_git_paths=True)
    )


def _bundle_statement(signature_path: Path) -> dict:
    try:
        bundle = json.loads(signature_path.read_text())
        return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise VerificationError(f"{signature_path} is not a model-signing bundle") from None


def bundle_root_digest(signature_path: Path) -> str:
    """The root digest the model-signing bundle signs (its in-toto statement's subject)."""
    try:
        return _bundle_statement(signature_path)["subject"][0]["digest"]["sha256"]
    except (KeyError, IndexError, TypeError):
        raise VerificationError(f"{signature_path} is not a model-signing bundle") from None


def signed_file_digests(signature_path: Path) -> dict[str, str]:
    """File name -> sha256 as the model-signing manifest records it (what the signature covers)."""
    try:
        return {r["name"]: r["digest"] for r in _bundle_statement(signature_path)["predicate"]["resources"]}
    except (KeyError, TypeError):
        raise VerificationError(f"{signature_path} is not a model-signing bundle") from None


def read_envelope(seal_dir: Path) -> dict:
    path = seal_dir / ENVELOPE
    if not path.is_file():
        raise VerificationError(f"no provenance statement ({path} missing): the model is not sealed")
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise VerificationError(f"{path} is not JSON") from None


def unverified_statement(model_dir: Path) -> tuple[dict, bytes]:
    """The statement and its payload bytes, *without* checking the signature (lineage display)."""
    env = read_envelope(Path(model_dir) / SEAL_DIR)
    payload = base64.b64decode(env["payload"])
    return json.loads(payload), payload


@dataclass
class SealConfig:
    """Arguments of ``charter seal`` (one field per CLI flag)."""

    model_dir: str
    constitution: str
    key: str
    parent: str | None = None
    data: tuple[str, ...] = ()
    training: str | None = None  # default: MODEL_DIR itself when it is a training output
    evals: tuple[str, ...] = ()
    guard: str | None = None  # a guard directory served with the model (its thresholds are sealed too)
    max_workers: int | None = None
    overwrite: bool = False


@dataclass
class Sealer:
    config: SealConfig
    passphrase: bytes | None = field(default=None, repr=False)

    def seal(self) -> dict:
        c = self.config
        model_dir = Path(c.model_dir)
        if not model_dir.is_dir():
            raise InputError("no such model directory", source=str(model_dir))
        seal_dir = model_dir / SEAL_DIR
        if seal_dir.exists() and not c.overwrite:
            raise InputError("is already sealed; pass --overwrite to seal it again", source=str(model_dir))
        constitution = load_constitution(c.constitution)
        text = constitution_text(c.constitution)
        key = load_private_key(c.key, self.passphrase)  # fail on a wrong passphrase before hashing
        datasets = [dataset_entry(d) for d in c.data]
        training_dir = (
            Path(c.training) if c.training else (model_dir if (model_dir / "train_config.json").exists() else None)
        )
        training = training_entry(training_dir) if training_dir else None
        evaluations = [self._evaluation(Path(e), model_dir) for e in c.evals]
        guard = self._guard_for(constitution)
        parent = self._parent(Path(c.parent)) if c.parent else None
        base = (training or {}).get("config", {}).get("base_model")
        adapter_base = self._adapter_base(model_dir, base)

        seal_dir.mkdir(parents=True, exist_ok=True)
        sig_path = self._sign_model_files(model_dir, seal_dir)
        root = bundle_root_digest(sig_path)

        statement = build_statement(
            model_name=model_dir.resolve().name,
            root_digest=root,
            constitution=constitution,
            constitution_text=text,
            datasets=datasets,
            training=training,
            evaluations=evaluations,
            parent=parent,
            base_model=base,
            guard=guard,
            signature_file=f"{SEAL_DIR}/{MODEL_SIGNATURE}",
            adapter_base=adapter_base,
        )
        payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
        envelope = sign_envelope(payload, INTOTO, key)
        tmp = seal_dir / (ENVELOPE + ".tmp")
        tmp.write_text(json.dumps(envelope, indent=2) + "\n")
        os.replace(tmp, seal_dir / ENVELOPE)
        return {
            "model_dir": str(model_dir),
            "root_digest": root,
            "statement_digest": statement_digest(payload),
            "signature": str(sig_path),
            "statement": str(seal_dir / ENVELOPE),
            "constitution": f"{constitution.name} {constitution.version}",
            "datasets": len(datasets),
            "parent": parent["path"] if parent else None,
        }

    def _guard_for(self, constitution) -> dict | None:
        """The configured guard's entry (None without one), refused when it was trained for another constitution."""
        c = self.config
        guard = guard_entry(Path(c.guard)) if c.guard else None
        bound = (guard or {}).get("constitution") or {}
        if bound.get("digest") and bound["digest"] != constitution_digest(constitution):
            # A guard trained from another constitution's categories does not enforce this one.
            raise InputError(
                f"the guard was trained for constitution {bound.get('name')!r} ({bound['digest'][:23]}…), "
                f"not the one being sealed ({constitution_digest(constitution)[:23]}…)",
                source=c.guard,
            )
        return guard

    def _sign_model_files(self, model_dir: Path, seal_dir: Path) -> Path:
        """model-signing's signature over every model file (the seal directory left out), written
        atomically to ``seal_dir``; returns its path."""
        import model_signing

        sig_path = seal_dir / MODEL_SIGNATURE
        tmp_sig = seal_dir / (MODEL_SIGNATURE + ".tmp")
        (
            model_signing.signing.Config()
            .set_hashing_config(hashing_config(self.config.max_workers))
            .use_elliptic_key_signer(private_key=self.config.key, password=self.passphrase)
            .sign(model_dir, tmp_sig)
        )
        os.replace(tmp_sig, sig_path)
        return sig_path

    @staticmethod
    def _adapter_base(model_dir: Path, trained_from: dict | None) -> dict | None:
        """For a PEFT adapter directory: the base it loads (adapter_config.json's
        base_model_name_or_path), bound by content so a replaced base fails verification and sealed
        loading. None for a full model."""
        name = adapter_base_name(model_dir)
        if name is None:
            return None
        src = str(model_dir / ADAPTER_CONFIG)
        try:
            base_dir = adapter_base_dir(name)
            content = base_content(base_dir)
        except VerificationError as exc:
            raise InputError(
                f"{exc}: an adapter is sealed together with its base, which must be on this machine", source=src
            ) from None
        entry = {"name_or_path": name, "path": str(base_dir.resolve()), "spec": f"hf:{base_dir.resolve()}"} | content
        gguf = gguf_source(base_dir)
        if gguf:  # the dequantised copy of a GGUF file (embedded, gguf:): the copy is what loads
            entry["gguf"] = gguf
        if (base_dir / SEAL_DIR).is_dir():
            statement, payload = unverified_statement(base_dir)
            entry["seal"] = {
                "statement_digest": statement_digest(payload),
                "root_digest": statement["subject"][0]["digest"]["sha256"],
            }
        elif (base_dir / ADAPTER_CONFIG).is_file():
            raise InputError(
                f"the adapter's base {name} is itself an unsealed adapter (its own base is outside any "
                "seal): seal it first, or train on a merged model",
                source=src,
            )
        # The base on disk must be the one training recorded (a base replaced between training and
        # sealing would otherwise be sealed as if it were the original).
        trained_from = trained_from or {}
        want, got = trained_from.get("sha256"), None
        if want and trained_from.get("gguf"):
            got = (gguf or {}).get("sha256")
        elif want and trained_from.get("path") and Path(trained_from["path"]).resolve() == base_dir.resolve():
            got = content["sha256"]
        mismatch = bool(want) and (got != want if got is not None else bool(trained_from.get("gguf")))
        if mismatch:
            raise InputError(
                f"the adapter's base {name} is not the model it was trained from (training recorded "
                f"{want[:23]}…, the base has {(got or 'no GGUF source')[:23]}…)",
                source=src,
            )
        if trained_from.get("spec") and (got is not None):
            entry["spec"] = trained_from["spec"]
        return entry

    @staticmethod
    def _parent(parent_dir: Path) -> dict:
        if not (parent_dir / SEAL_DIR).is_dir():
            raise InputError("the parent is not a sealed model (no charter-seal/)", source=str(parent_dir))
        statement, payload = unverified_statement(parent_dir)
        return {
            "path": str(parent_dir.resolve()),
            "statement_digest": statement_digest(payload),
            "subject_digest": statement["subject"][0]["digest"]["sha256"],
        }

    @staticmethod
    def _evaluation(eval_dir: Path, model_dir: Path) -> dict:
        path = eval_dir / "summary.json"
        if not path.is_file():
            raise InputError("not an evaluation directory (no summary.json)", source=str(eval_dir))
        summary = json.loads(path.read_text())
        # An evaluation of another local model (the base, a sibling run) must not be sealed as this
        # model's evidence. Remote specs (openai:) cannot be resolved and are recorded as given.
        spec = str(summary.get("model") or "")
        kind, _, target = spec.partition(":")
        if (
            spec == "embedded"
            or kind in ("gguf", "llamacpp")
            or (kind == "hf" and Path(target).exists() and Path(target).resolve() != model_dir.resolve())
        ):
            raise InputError(
                f"evaluated {spec}, not {model_dir}: seal each model with its own evaluations", source=str(eval_dir)
            )
        return {
            "dir": str(eval_dir),
            "suite": summary.get("suite"),
            "model": summary.get("model"),
            "judge": summary.get("judge"),
            "summary_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "figures": {
                k: summary.get(k)
                for k in ("asr_refusal", "asr_judge", "over_refusal", "labels", "pairs", "elo")
                if k in summary
            },
        }
