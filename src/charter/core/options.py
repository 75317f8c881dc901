"""Config fields that carry their own CLI help, as TRL's configs do (``field(metadata={"help": ...})``).

A stage's ``...Config`` dataclass is the one place a flag is described; the CLI builds its typer
options from these fields (``charter.cli._options.config_command``), so help, default and type are
written once. Nothing here imports typer: the library stays usable without the CLI.
"""

from __future__ import annotations

from dataclasses import MISSING, field
from typing import Any


def option(
    default: Any = MISSING,
    *,
    help: str = "",
    flags: tuple[str, ...] = (),
    path: bool = False,
    cli: bool = True,
) -> Any:
    """A dataclass field with CLI metadata.

    ``flags``: the option's spellings (default ``--field-name``); ``path``: the CLI takes a file
    path (a ``Path``; the config keeps the string); ``cli=False``: set by code, not by a flag.
    """
    meta = {"help": help, "flags": tuple(flags), "path": path, "cli": cli}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults: use a tuple")
    return field(default=default, metadata=meta)
