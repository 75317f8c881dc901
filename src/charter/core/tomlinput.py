"""Small TOML input files (check rules, deployer info, compliance profiles) validated by a pydantic
model, with errors that name the file, the line and the field, as constitution files do."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from charter.core.errors import InputError

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
        err = exc.errors(include_url=False)[0]
        loc = tuple(err["loc"])
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise InputError(f"{format_loc(loc)}: {msg}", source=source, line=locate(text, loc)) from None


def format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")


def locate(text: str, loc: tuple) -> int | None:
    """Best-effort 1-based line of the TOML element a validation error's ``loc`` points at."""
    lines = text.splitlines()
    headers = []  # (line index, is_array, dotted name)
    for n, line in enumerate(lines):
        m = _HEADER.match(line)
        if m:
            headers.append((n, m.group(1) == "[[", m.group(2).replace('"', "").replace("'", "")))

    def window_end(start: int, prefix: str) -> int:
        for n, _, name in headers:
            if n > start and not name.startswith(prefix + "."):
                return n
        return len(lines)

    def own_keys_end(start: int, end: int) -> int:
        # Keys of a table come before its first sub-table header.
        return next((n for n, _, _ in headers if start < n < end), end)

    start, end, prefix, best = -1, len(lines), "", None
    parts = list(loc)
    while parts:
        key = parts.pop(0)
        if isinstance(key, int):
            continue
        dotted = f"{prefix}.{key}" if prefix else key
        index = parts.pop(0) if parts and isinstance(parts[0], int) else None
        sub = [n for n, is_arr, name in headers if start < n < end and name == dotted]
        if sub:
            pick = sub[index] if index is not None and index < len(sub) else sub[0]
            start, prefix, best = pick, dotted, pick + 1
            end = next((n for n in sub if n > pick), window_end(pick, dotted))
            continue
        key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for n in range(start + 1, own_keys_end(start, end)):
            if key_re.match(lines[n]):
                return n + 1
        if any(start < n < end and name.startswith(dotted + ".") for n, _, name in headers):
            # Only sub-tables exist ([[categories.prohibited]] with no [categories]): descend.
            prefix = dotted
            if index is not None:
                parts.insert(0, index)
            continue
        return best
    return best
