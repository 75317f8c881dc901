"""A sealed model and the chain of seals behind it, read once for documents and checks.

Everything a governance document or check states is read from here: the provenance statements
(verified with the public key when one is given) and the model files the seal signs
(``config.json`` for the architecture). Figures carry the statement digest they came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from charter.errors import InputError, VerificationError
from charter.provenance.seal import SEAL_DIR, unverified_statement
from charter.provenance.statement import statement_digest

ARCHITECTURE_KEYS = ("model_type", "architectures", "num_hidden_layers", "hidden_size", "intermediate_size",
                     "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings",
                     "tie_word_embeddings", "rope_theta")


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
        """What the first sealed stage was trained from (the base model a filing names)."""
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
    chain: list[SealedStage] = []
    current, expected, seen = model_dir, None, set()
    while True:
        if public_key:
            from charter.provenance.verify import verify_model

            v = verify_model(current, public_key)
            statement, digest = v.statement, v.statement_digest
        else:
            try:
                statement, payload = unverified_statement(current)
            except (KeyError, ValueError, TypeError) as exc:
                raise InputError(f"unreadable provenance statement ({exc})", source=str(current / SEAL_DIR)) from None
            digest = statement_digest(payload)
        if expected and digest != expected:
            raise VerificationError(f"{current}: its statement is not the one its child recorded (re-sealed or replaced)")
        if "predicate" not in statement or "constitution" not in statement.get("predicate", {}):
            raise InputError("is not a Charter provenance statement", source=str(current / SEAL_DIR))
        chain.append(SealedStage(str(current), statement, digest, bool(public_key)))
        parent = statement["predicate"].get("parent")
        if not parent:
            break
        if parent["path"] in seen:
            raise VerificationError("lineage loops back on itself")
        seen.add(parent["path"])
        current, expected = Path(parent["path"]), parent["statement_digest"]
        if not (current / SEAL_DIR).is_dir():
            break  # the parent is not on this machine: the chain stops at what can be read
    return SealedModel(chain, architecture=read_architecture(model_dir))


def read_architecture(model_dir: Path) -> dict:
    """Architecture fields of config.json (a signed model file; for a PEFT adapter, adapter_config)."""
    for name in ("config.json", "adapter_config.json"):
        p = model_dir / name
        if p.is_file():
            try:
                cfg = json.loads(p.read_text())
            except ValueError:
                raise InputError(f"{name} is not JSON", source=str(p)) from None
            return {k: cfg[k] for k in ARCHITECTURE_KEYS if k in cfg}
    return {}
