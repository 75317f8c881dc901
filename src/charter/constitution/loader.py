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
from charter.core.errors import InputError
from charter.core.tomlinput import format_loc, locate

BUNDLED_PACKAGE = "charter.constitution.bundled"


def bundled_names() -> list[str]:
    return sorted(
        p.name[: -len(".toml")] for p in resources.files(BUNDLED_PACKAGE).iterdir() if p.name.endswith(".toml")
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
        raise InputError(f"invalid TOML: {msg}", source=source, line=int(m.group(1)) if m else None) from None
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
