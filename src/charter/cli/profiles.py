"""``charter profiles list|show``: compliance profiles."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.table import Table

from charter.cli._common import console, handle_errors

app = typer.Typer(
    help="Compliance profiles: disclosures, labels, watermarks, retention, safeguards.", no_args_is_help=True
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="profiles")


@app.command("list")
@handle_errors
def profiles_list() -> None:
    """The bundled profiles."""
    from charter.policy.profiles import BUNDLED, load_profile

    for name in BUNDLED:
        typer.echo(f"{name}\t{load_profile(name).description}")


@app.command("show")
@handle_errors
def profiles_show(
    names: list[str] = typer.Argument(
        ..., help="Profile names or .toml paths; several compose to the stricter setting of each."
    ),
    remote: Optional[bool] = typer.Option(
        None, "--remote/--local", help="Whether the upstream is remote (watermarks need a local one)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The effective settings and the profile each one came from."""
    from charter.policy.profiles import compose

    e = compose(names)
    rows = e.describe(local_upstream=None if remote is None else not remote)
    if as_json:
        typer.echo(
            json.dumps(
                {"profiles": e.names, "settings": [{"setting": k, "value": v, "source": s} for k, v, s in rows]},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    table = Table(title=f"effective compliance settings: {' + '.join(e.names)}")
    table.add_column("setting", no_wrap=True)
    table.add_column("value")
    table.add_column("from")
    for k, v, s in rows:
        table.add_row(k, v, s)
    console.print(table)
    console.print(
        "Watermarks apply to local upstreams only: a remote server's logits are not available, so its "
        "answers get the explicit label but no implicit mark.",
        highlight=False,
    )
