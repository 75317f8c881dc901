"""Small TOML input files (check rules, deployer info, compliance profiles) validated by a pydantic
model, with errors that name the file, the line and the field, as constitution files do."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from charter.errors import InputError

M = TypeVar("M", bound=BaseModel)


def load_toml_model(path: str | Path | None, model: type[M], what: str) -> M:
    """``model()`` when no path is given; else the file validated (unknown keys are typos: errors)."""
    if path is None:
        return model()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such {what} file", source=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text", source=str(p)) from None
    return parse_toml_model(text, model, source=str(p))


def parse_toml_model(text: str, model: type[M], *, source: str) -> M:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", source=source) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        from charter.constitution.loader import format_loc, locate

        err = exc.errors(include_url=False)[0]
        loc = tuple(err["loc"])
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise InputError(f"{format_loc(loc)}: {msg}", source=source, line=locate(text, loc)) from None
