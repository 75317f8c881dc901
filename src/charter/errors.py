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
