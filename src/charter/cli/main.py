"""The ``charter`` command line: parses flags and calls the library, nothing more."""

from __future__ import annotations

import typer

from charter import __version__
from charter.cli import (
    admin,
    align,
    assess,
    audit,
    cai,
    check,
    collective,
    constitution,
    data,
    docs,
    evals,
    guard,
    incident,
    keys,
    models,
    profiles,
    provenance,
    serve,
    train,
    watermark,
)

app = typer.Typer(
    name="charter",
    help="One written constitution -> an aligned, verifiable and governed open-weight model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Every command module registers itself the same way; the order is the order of `charter --help`.
for module in (
    constitution,
    cai,
    train,
    evals,
    guard,
    data,
    models,
    align,
    keys,
    provenance,
    serve,
    admin,
    incident,
    audit,
    profiles,
    watermark,
    docs,
    check,
    assess,
    collective,
):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"charter {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Charter: align (SL-CAI, RLAIF), govern, seal, guard and prove a model from one constitution."""


if __name__ == "__main__":  # pragma: no cover
    app()
