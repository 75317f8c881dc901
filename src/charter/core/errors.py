"""Errors that end a command with a one-line message.

``InputError`` is for anything the user handed us (files, flags, model specs, endpoints): the CLI
prints it on one line and exits 2, as usage errors do.
"""

from __future__ import annotations


class CharterError(Exception):
    """Base class for errors Charter reports to the user in one line."""

    exit_code = 1


class InputError(CharterError):
    """Bad input: a file, field, flag, model spec or endpoint that cannot be used."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        self.source = source
        self.line = line
        where = ""
        if source:
            where = f"{source}:{line}: " if line else f"{source}: "
        super().__init__(f"{where}{message}")


class BackendError(InputError):
    """A model backend could not be loaded or reached (unknown spec, missing file, dead endpoint)."""


class ContextLengthError(BackendError):
    """A prompt does not fit the model's context window: that one request fails, not the run."""


class VerificationError(CharterError):
    """A signature, digest or binding did not verify: the artifact is not what was sealed (exit 1)."""

    exit_code = 1


def require_at_least_one(config: object, *fields: str) -> None:
    """InputError naming the CLI flag of the first field (None allowed: "no limit") below 1."""
    for name in fields:
        value = getattr(config, name)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise InputError(f"{flag} must be at least 1", source=flag)
