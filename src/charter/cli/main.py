"""The ``charter`` command line: parses flags and calls the library, nothing more."""

from __future__ import annotations

import typer

from charter import __version__
from charter.cli import (
    align, assess, cai, collective, compliance, constitution, data, evals, gateway, governance, guard, models, provenance, train,
)

app = typer.Typer(
    name="charter",
    help="One written constitution -> an aligned, verifiable and governed open-weight model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(constitution.app, name="constitution")
app.add_typer(cai.app, name="cai")
app.add_typer(train.app, name="train")
app.add_typer(evals.app, name="eval")
app.add_typer(guard.app, name="guard")
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
align.register(app)
provenance.register(app)
gateway.register(app)
compliance.register(app)
governance.register(app)
assess.register(app)
app.add_typer(collective.app, name="collective")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"charter {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Charter: align (SL-CAI, RLAIF), govern, seal, guard and prove a model from one constitution."""


if __name__ == "__main__":  # pragma: no cover
    app()
