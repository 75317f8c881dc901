"""Which feedback a CAI stage uses: an LM, the guard (``guard:DIR``), or an LM with a guard
(``--guard DIR``, an ensemble). Parsed and checked once, recorded in run.json and the seal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from charter.core.digests import file_sha256
from charter.core.errors import InputError

GUARD_PREFIX = "guard:"


@dataclass(frozen=True)
class FeedbackSource:
    guard_dir: Path | None  # the guard is the critic/judge
    ensemble_dir: Path | None  # a guard combined with the LM critic/judge
    record: dict  # what run.json and every record say about it

    @classmethod
    def parse(cls, spec: str | None, default: str, guard: str | None, *, flag: str) -> FeedbackSource:
        """``spec``: the --critic/--judge value (None: ``default``, the policy); ``guard``: --guard."""
        guard_dir = Path(spec[len(GUARD_PREFIX) :]) if spec and spec.startswith(GUARD_PREFIX) else None
        if guard_dir is not None and not (guard_dir / "guard.json").is_file():
            raise InputError("not a guard directory (no guard.json)", source=flag)
        ensemble_dir = Path(guard) if guard else None
        if ensemble_dir is not None:
            if guard_dir is not None:
                raise InputError(
                    f"--guard combines a guard with an LM; with {flag} guard:DIR it has nothing to add",
                    source="--guard",
                )
            if not (ensemble_dir / "guard.json").is_file():
                raise InputError("not a guard directory (no guard.json)", source="--guard")
        record: dict = {"kind": "lm", "spec": spec or default}
        if guard_dir is not None:
            record = {"kind": "guard", "spec": spec, "guard_json_sha256": file_sha256(guard_dir / "guard.json")}
        elif ensemble_dir is not None:
            record = {
                "kind": "ensemble",
                "spec": spec or default,
                "guard": str(ensemble_dir),
                "guard_json_sha256": file_sha256(ensemble_dir / "guard.json"),
            }
        return cls(guard_dir, ensemble_dir, record)


__all__ = ["GUARD_PREFIX", "FeedbackSource"]
