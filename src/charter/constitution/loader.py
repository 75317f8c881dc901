"""Load constitution TOML files (or bundled names) into validated models.

Errors name the file, the line and the field, so a person editing the TOML can go straight there.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from charter.constitution.model import Constitution, _LocatedError
from charter.errors import InputError

BUNDLED_PACKAGE = "charter.constitution.bundled"


def bundled_names() -> list[str]:
    return sorted(
        p.name[: -len(".toml")]
        for p in resources.files(BUNDLED_PACKAGE).iterdir()
        if p.name.endswith(".toml")
    )


def load_constitution(ref: str | Path) -> Constitution:
    """Load a constitution from a TOML path or a bundled name (``default``, ``cai-2022``)."""
    path = Path(ref)
    if path.is_file():
        return parse_constitution(path.read_text(encoding="utf-8"), source=str(path))
    if isinstance(ref, str) and ref in bundled_names():
        text = resources.files(BUNDLED_PACKAGE).joinpath(f"{ref}.toml").read_text(encoding="utf-8")
        return parse_constitution(text, source=f"<bundled:{ref}>")
    if path.exists():
        raise InputError("is not a file", source=str(ref))
    raise InputError(
        f"no such constitution file or bundled name (bundled: {', '.join(bundled_names())})",
        source=str(ref),
    )


def constitution_text(ref: str | Path) -> str:
    """The raw TOML behind a reference (for sealing the full text later)."""
    path = Path(ref)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    return resources.files(BUNDLED_PACKAGE).joinpath(f"{ref}.toml").read_text(encoding="utf-8")


def parse_constitution(text: str, *, source: str = "<string>") -> Constitution:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise InputError(f"invalid TOML: {msg}", source=source, line=int(m.group(1)) if m else None)
    try:
        return Constitution.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _LocatedError):
            loc, message = cause.loc, str(cause)
        else:
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "required field is missing"
            elif err["type"] == "extra_forbidden":
                message = "unknown field"
        # Union members add their own names to the loc; keep the fields a person wrote.
        loc = tuple(p for p in loc if isinstance(p, int) or not _is_type_tag(p))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(
            f"{format_loc(loc) or '<top level>'}: {message}{more}",
            source=source,
            line=locate(text, loc),
        ) from None


def _is_type_tag(part: str) -> bool:
    return part.startswith(("literal[", "tuple[", "function-")) or part in {"str", "float", "int"}


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
