"""Question banks: the prompt sets the generated-content, refusal and non-refusal checks sample."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from charter.core.errors import InputError
from charter.core.io import PromptRecord, file_columns, load_prompts
from charter.core.seeding import stable_seed
from charter.governance.assess.config import CATEGORY_COLUMNS

# -- banks -----------------------------------------------------------------------------------------


def _where(spec: str | None, path: str, default: str | None, flag: str) -> dict | None:
    if spec is not None:
        if spec.strip().lower() in ("", "none"):
            return None
        col, eq, value = spec.partition("=")
        if not eq or not col.strip():
            raise InputError("expected COLUMN=VALUE (or none)", source=flag)
        return {col.strip(): value.strip()}
    if default and "label" in file_columns(path):
        return {"label": default}
    return None


@dataclass
class Bank:
    check: str
    path: str
    column: str | None
    where: dict | None
    prompts: list[PromptRecord]
    category_column: str | None

    def sample(self, n: int, seed: int) -> list[PromptRecord]:
        """The first n of a seeded permutation: a larger n extends the same sample."""
        order = list(range(len(self.prompts)))
        random.Random(stable_seed(seed, "assess", self.check)).shuffle(order)
        return [self.prompts[i] for i in order[:n]]


def _load_bank(
    check: str, path: str, column: str | None, where_spec: str | None, default: str | None, flag: str
) -> Bank:
    if not Path(path).is_file():
        raise InputError("no such bank file", source=path)
    where = _where(where_spec, path, default, flag)
    columns = file_columns(path)
    cat = next((c for c in CATEGORY_COLUMNS if c in columns), None)
    try:
        prompts = load_prompts(path, column, keep=(cat,) if cat else (), where=where)
    except InputError as exc:
        if where and "no prompts found" in str(exc):
            raise InputError(
                f"no prompts with {where} (set the filter with {flag} COL=VALUE, or none)", source=path
            ) from None
        raise
    return Bank(check, path, column, where, prompts, cat)
