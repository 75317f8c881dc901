"""A sealed model and the chain of seals behind it, read once for documents and checks.

Everything a governance document or check states is read from here: the provenance statements
(verified with the public key when one is given) and the model files the seal signs
(``config.json`` for the architecture). Figures carry the statement digest they came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from charter.core.errors import InputError
from charter.provenance.seal import MODEL_SIGNATURE, SEAL_DIR, signed_file_digests
from charter.provenance.verify import walk_seals

ADAPTER_KEYS = ("peft_type", "r", "lora_alpha", "target_modules", "base_model_name_or_path", "task_type")
ARCHITECTURE_KEYS = (
    "model_type",
    "architectures",
    "num_hidden_layers",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "max_position_embeddings",
    "tie_word_embeddings",
    "rope_theta",
)


@dataclass
class SealedStage:
    model_dir: str
    statement: dict
    statement_digest: str
    verified: bool

    @property
    def predicate(self) -> dict:
        return self.statement["predicate"]

    @property
    def root_digest(self) -> str:
        return self.statement["subject"][0]["digest"]["sha256"]

    @property
    def method(self) -> str | None:
        return ((self.predicate.get("training") or {}).get("config") or {}).get("method")


@dataclass
class SealedModel:
    """The model's own seal first, then its parents back to the first sealed stage."""

    chain: list[SealedStage]
    architecture: dict = field(default_factory=dict)
    # The chain stopped at a parent that is not on this machine: base model and earlier datasets unknown.
    truncated: str | None = None
    architecture_file: dict | None = None  # {"file": path, "sha256": digest} the architecture was read from
    file_digests: dict[str, str] = field(default_factory=dict)  # name -> sha256 in the signed manifest

    @property
    def is_adapter(self) -> bool:
        return bool(self.architecture.get("peft_type"))

    @property
    def head(self) -> SealedStage:
        return self.chain[0]

    @property
    def predicate(self) -> dict:
        return self.head.predicate

    @property
    def constitution(self) -> dict:
        return self.predicate["constitution"]

    @property
    def base_model(self) -> dict | None:
        """What the first sealed stage was trained from (the base model a filing names); None when
        the chain is truncated, since the oldest stage here was trained from a parent not read."""
        if self.truncated:
            return None
        for stage in reversed(self.chain):
            if stage.predicate.get("base_model"):
                return stage.predicate["base_model"]
        return None

    def datasets(self) -> list[dict]:
        """Every dataset of every stage, oldest stage first, each tagged with its stage."""
        out = []
        for stage in reversed(self.chain):
            for d in stage.predicate.get("datasets", []):
                out.append(d | {"stage": stage.method or "unknown", "stage_statement": stage.statement_digest})
        return out

    def stages_oldest_first(self) -> list[SealedStage]:
        return list(reversed(self.chain))


def sealed_records(path: str | Path, sha256: str) -> list[bytes] | None:
    """The non-empty lines (records) of a sealed dataset file, only when the file on disk is the
    one the seal recorded; None when it is missing or differs."""
    import hashlib

    try:
        raw = Path(path).read_bytes()
    except OSError:
        return None
    if hashlib.sha256(raw).hexdigest() != sha256:
        return None
    return [line.strip() for line in raw.splitlines() if line.strip()]


def base_description(base: dict | None) -> str | None:
    """A base model as a person reads it: its spec and, when recorded, its content digest."""
    if not base:
        return None
    sha = base.get("sha256")
    return f"{base.get('spec') or base.get('path')}" + (
        f" ({sha if sha.startswith('sha256:') else 'sha256:' + sha})" if sha else ""
    )


def base_identity(base: dict | None) -> str | None:
    if not base:
        return None
    return base.get("sha256") or base.get("spec") or base.get("path")


def load_sealed(model_dir: str | Path, public_key: str | Path | None = None) -> SealedModel:
    """Read (and with a key, verify) a sealed model and its parents."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError("no such model directory", source=str(model_dir))
    if not (model_dir / SEAL_DIR).is_dir():
        raise InputError(f"is not a sealed model (no {SEAL_DIR}/; run charter seal first)", source=str(model_dir))
    links, truncated = walk_seals(model_dir, public_key)
    chain = []
    for link in links:
        if "constitution" not in (link.statement.get("predicate") or {}):
            raise InputError("is not a Charter provenance statement", source=str(link.model_dir / SEAL_DIR))
        chain.append(SealedStage(str(link.model_dir), link.statement, link.statement_digest, link.verified))
    sig = model_dir / SEAL_DIR / MODEL_SIGNATURE
    digests = signed_file_digests(sig) if sig.is_file() else {}
    architecture, source = read_architecture(model_dir, digests)
    return SealedModel(
        chain, architecture=architecture, truncated=truncated, architecture_file=source, file_digests=digests
    )


def read_architecture(model_dir: Path, signed: dict[str, str]) -> tuple[dict, dict | None]:
    """Architecture fields of config.json (a signed model file) and the file they came from, named
    by its digest in the signed manifest; for a PEFT adapter directory, the adapter's own fields
    (rank, targets, base) from adapter_config.json."""
    for name, keys in (("config.json", ARCHITECTURE_KEYS), ("adapter_config.json", ADAPTER_KEYS)):
        p = model_dir / name
        if p.is_file():
            try:
                cfg = json.loads(p.read_bytes())
            except ValueError:
                raise InputError(f"{name} is not JSON", source=str(p)) from None
            if not isinstance(cfg, dict):
                raise InputError(f"{name} is not a JSON object", source=str(p))
            return {k: cfg[k] for k in keys if k in cfg}, {"file": str(p), "sha256": signed.get(name)}
    return {}, None
