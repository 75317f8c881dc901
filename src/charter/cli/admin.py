"""``charter admin``: tenants and the kill switch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors
from charter.cli._gateway import CONFIG_OPTION as _CONFIG
from charter.cli._gateway import DATABASE_OPTION as _DATABASE
from charter.cli._gateway import open_db as _db
from charter.core.errors import InputError

app = typer.Typer(help="Gateway administration: tenants and the kill switch.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="admin")


@app.command("add-tenant")
@handle_errors
def add_tenant(
    name: str = typer.Argument(..., help="Tenant name."),
    admin: bool = typer.Option(False, "--admin", help="May call admin endpoints and read every tenant's entries."),
    rpm: int = typer.Option(60, "--rpm", min=1, help="Rate limit, requests per minute per gateway process."),
    config: Optional[Path] = _CONFIG,
    database: Optional[str] = _DATABASE,
) -> None:
    """Create a tenant and print its API key (shown once; only its hash is stored)."""
    from charter.gateway.tenants import add_tenant as add

    _, engine, log = _db(config, database)
    key = add(engine, name, admin=admin, rate_limit_rpm=rpm)
    log.append("admin.add_tenant", {"tenant": name, "admin": admin, "rate_limit_rpm": rpm, "actor": "cli"})
    typer.echo(key)


@app.command("revoke-tenant")
@handle_errors
def revoke_tenant(
    name: str = typer.Argument(..., help="Tenant name."),
    config: Optional[Path] = _CONFIG,
    database: Optional[str] = _DATABASE,
) -> None:
    """Revoke a tenant: delete it (its key stops working within seconds on every gateway process)
    and end its console sessions; logged in the audit log."""
    from charter.gateway.tenants import revoke_tenant as revoke

    cfg, engine, log = _db(config, database)
    info = revoke(engine, log, name, actor="cli")
    note = (
        " (it is declared in [[tenants]] of the config: remove the block, or the next start brings it back)"
        if any(t.name == name for t in cfg.tenants)
        else ""
    )
    console.print(f"revoked tenant {name} ({info['console_sessions']} console sessions ended){note}", highlight=False)


def _scope(model: Optional[str], tenant: Optional[str]) -> str:
    from charter.gateway.control import ALL, tenant_scope

    if model and tenant:
        raise InputError("name a model or a tenant, not both", source="--tenant")
    return tenant_scope(tenant) if tenant else model or ALL


@app.command("suspend")
@handle_errors
def suspend(
    model: Optional[str] = typer.Option(None, "--model", help="Only this model id (default: everything served)."),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="Instead: only this tenant's access."),
    reason: str = typer.Option("suspended by an administrator", "--reason"),
    config: Optional[Path] = _CONFIG,
    database: Optional[str] = _DATABASE,
) -> None:
    """Kill switch: refuse new requests and stop in-flight streams (every process on the database)."""
    from charter.gateway.control import KillSwitch

    scope = _scope(model, tenant)
    _, engine, log = _db(config, database)
    s = KillSwitch(engine, log).suspend(scope, reason=reason, actor="cli")
    console.print(f"suspended {s.scope} since {s.since}: {s.reason}", highlight=False)


@app.command("resume")
@handle_errors
def resume(
    model: Optional[str] = typer.Option(
        None, "--model", help="The model id suspended with --model (default: the global switch)."
    ),
    tenant: Optional[str] = typer.Option(
        None, "--tenant", help="The tenant suspended with --tenant or a per-tenant trip rule."
    ),
    config: Optional[Path] = _CONFIG,
    database: Optional[str] = _DATABASE,
) -> None:
    """Lift a suspension."""
    from charter.gateway.control import KillSwitch

    scope = _scope(model, tenant)
    _, engine, log = _db(config, database)
    was = KillSwitch(engine, log).resume(scope, actor="cli")
    console.print(f"resumed {scope}" + ("" if was else " (it was not suspended)"), highlight=False)


@app.command("status")
@handle_errors
def status(config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE) -> None:
    """Suspensions in force and the audit log's size."""
    from charter.gateway.control import KillSwitch

    _, engine, log = _db(config, database)
    typer.echo(json.dumps({"suspensions": KillSwitch(engine, log).status(), "audit_entries": log.size()}, indent=2))


# -- incidents ------------------------------------------------------------------------------------
