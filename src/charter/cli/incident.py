"""``charter incident``: incidents opened by trip rules or administrators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors
from charter.cli._gateway import CONFIG_OPTION as _CONFIG
from charter.cli._gateway import DATABASE_OPTION as _DATABASE
from charter.cli._gateway import open_db as _db

app = typer.Typer(help="Incidents opened by trip rules or administrators.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="incident")


@app.command("list")
@handle_errors
def incident_list(config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE) -> None:
    """Every incident, one line each."""
    from charter.gateway.control import Incidents

    _, engine, log = _db(config, database)
    for i in Incidents(engine, log).list():
        typer.echo(f"{i['id']}\t{i['status']}\t{i['opened']}\t{i['scope']}\t{i['reason']}")


@app.command("report")
@handle_errors
def incident_report(
    incident_id: int = typer.Argument(..., help="Incident id (charter incident list)."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Write Markdown here (and JSON beside it) instead of printing."
    ),
    config: Optional[Path] = _CONFIG,
    database: Optional[str] = _DATABASE,
) -> None:
    """An incident's timeline, affected requests and guard decisions."""
    from charter.gateway.control import Incidents, render_report

    _, engine, log = _db(config, database)
    rep = Incidents(engine, log).report(incident_id)
    md = render_report(rep)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md)
        out.with_suffix(".json").write_text(json.dumps(rep, indent=2))
        console.print(f"wrote {out} and {out.with_suffix('.json')}", highlight=False)
    else:
        typer.echo(md)


@app.command("close")
@handle_errors
def incident_close(
    incident_id: int = typer.Argument(...),
    note: str = typer.Option("", "--note"),
    config: Optional[Path] = _CONFIG,
    database: Optional[str] = _DATABASE,
) -> None:
    """Close an incident (resuming service is a separate, deliberate `charter admin resume`)."""
    from charter.gateway.control import Incidents

    _, engine, log = _db(config, database)
    Incidents(engine, log).close(incident_id, actor="cli", note=note)
    console.print(f"closed incident {incident_id}", highlight=False)


# -- audit ----------------------------------------------------------------------------------------
