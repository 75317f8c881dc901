"""``charter serve``, ``charter admin``, ``charter incident`` and ``charter audit``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from charter.cli._common import console, err_console, handle_errors
from charter.core.clock import audit_time, audit_time_ago, parse_time
from charter.core.errors import InputError, VerificationError

admin_app = typer.Typer(help="Gateway administration: tenants and the kill switch.", no_args_is_help=True)
incident_app = typer.Typer(help="Incidents opened by trip rules or administrators.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log: verify, export, prove, checkpoint, purge.", no_args_is_help=True)

_CONFIG = typer.Option(None, "--config", "-c", help="gateway.toml (default: ./gateway.toml when present).")
_DATABASE = typer.Option(None, "--database", help="Database URL, overriding the config (sqlite:///F or postgresql://H/DB).")


def _config(config: Optional[Path], database: Optional[str] = None, **overrides):
    from charter.gateway.config import load_gateway_config

    if config is None and Path("gateway.toml").is_file():
        config = Path("gateway.toml")
    return load_gateway_config(config, **({"server.database": database} if database else {}), **overrides)


def _db(config: Optional[Path], database: Optional[str]):
    from charter.audit import AuditLog, connect

    cfg = _config(config, database)
    engine = connect(cfg.path(cfg.server.database), durability=cfg.server.durability)
    return cfg, engine, AuditLog(engine)


def _runtime_key(cfg):
    from charter.provenance.keys import load_runtime_key

    return load_runtime_key(cfg.runtime_key_path())


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(admin_app, name="admin")
    app.add_typer(incident_app, name="incident")
    app.add_typer(audit_app, name="audit")


@handle_errors
def serve(
    config: Optional[Path] = _CONFIG,
    host: Optional[str] = typer.Option(None, "--host", help="Bind address (overrides [server] host)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (overrides [server] port)."),
    model: Optional[str] = typer.Option(None, "--model", help="Upstream model spec (overrides [upstream] model)."),
    require_seal: Optional[Path] = typer.Option(None, "--require-seal", help="Public key: refuse to serve a model whose seal does not verify."),
    database: Optional[str] = _DATABASE,
    guard: Optional[Path] = typer.Option(None, "--guard", help="Guard directory (overrides [guard] path)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Gateway processes on this port (overrides [server] workers)."),
) -> None:
    """Serve the OpenAI-compatible, guarded, audited gateway (FastAPI + uvicorn)."""
    import uvicorn

    from charter.gateway import create_app
    from charter.gateway.app import configure_json_logging
    from charter.gateway.state import GatewayState

    cfg = _config(config, database, **{"server.host": host, "server.port": port, "upstream.model": model,
                                      "upstream.require_seal": str(require_seal.resolve()) if require_seal else None,
                                      "guard.path": str(guard.resolve()) if guard else None, "server.workers": workers})
    configure_json_logging()
    with console.status(f"loading {cfg.upstream.model}" + (" and the guard" if cfg.guard.path else "")):
        state = GatewayState(cfg)
    a = state.attestation
    err_console.print(f"serving {state.upstream.model_id} on http://{cfg.server.host}:{cfg.server.port}/v1 "
                      f"({'sealed, verified' if a.verified else 'sealed, not verified' if a.sealed else 'unsealed'}; "
                      f"guard {'on' if state.guard is not None else 'off'}; audit {cfg.server.database})", highlight=False)
    common = dict(host=cfg.server.host, port=cfg.server.port, log_config=None, access_log=False, timeout_graceful_shutdown=5)
    if cfg.server.workers == 1:
        uvicorn.run(create_app(cfg, state=state), **common)
        return
    # Several processes: each worker builds its own state from the validated configuration; they
    # share the database (one audit chain, one kill switch) and the runtime key file.
    import os

    from charter.gateway.app import CONFIG_ENV

    state.close()
    del state  # the parent only supervises: free its copy of the model and guard for the workers
    os.environ[CONFIG_ENV] = cfg.model_dump_json()
    uvicorn.run("charter.gateway.app:app_from_environment", factory=True, workers=cfg.server.workers, **common)


# -- admin ----------------------------------------------------------------------------------------
@admin_app.command("add-tenant")
@handle_errors
def add_tenant(
    name: str = typer.Argument(..., help="Tenant name."),
    admin: bool = typer.Option(False, "--admin", help="May call admin endpoints and read every tenant's entries."),
    rpm: int = typer.Option(60, "--rpm", min=1, help="Rate limit, requests per minute per gateway process."),
    config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE,
) -> None:
    """Create a tenant and print its API key (shown once; only its hash is stored)."""
    from charter.gateway.tenants import add_tenant as add

    _, engine, log = _db(config, database)
    key = add(engine, name, admin=admin, rate_limit_rpm=rpm)
    log.append("admin.add_tenant", {"tenant": name, "admin": admin, "rate_limit_rpm": rpm, "actor": "cli"})
    typer.echo(key)


@admin_app.command("revoke-tenant")
@handle_errors
def revoke_tenant(
    name: str = typer.Argument(..., help="Tenant name."),
    config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE,
) -> None:
    """Revoke a tenant: delete it (its key stops working within seconds on every gateway process)
    and end its console sessions; logged in the audit log."""
    from charter.gateway.tenants import revoke_tenant as revoke

    cfg, engine, log = _db(config, database)
    info = revoke(engine, log, name, actor="cli")
    note = (" (it is declared in [[tenants]] of the config: remove the block, or the next start brings it back)"
            if any(t.name == name for t in cfg.tenants) else "")
    console.print(f"revoked tenant {name} ({info['console_sessions']} console sessions ended){note}", highlight=False)


def _scope(model: Optional[str], tenant: Optional[str]) -> str:
    from charter.gateway.control import ALL, tenant_scope

    if model and tenant:
        raise InputError("name a model or a tenant, not both", source="--tenant")
    return tenant_scope(tenant) if tenant else model or ALL


@admin_app.command("suspend")
@handle_errors
def suspend(
    model: Optional[str] = typer.Option(None, "--model", help="Only this model id (default: everything served)."),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="Instead: only this tenant's access."),
    reason: str = typer.Option("suspended by an administrator", "--reason"),
    config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE,
) -> None:
    """Kill switch: refuse new requests and stop in-flight streams (every process on the database)."""
    from charter.gateway.control import KillSwitch

    scope = _scope(model, tenant)
    _, engine, log = _db(config, database)
    s = KillSwitch(engine, log).suspend(scope, reason=reason, actor="cli")
    console.print(f"suspended {s.scope} since {s.since}: {s.reason}", highlight=False)


@admin_app.command("resume")
@handle_errors
def resume(
    model: Optional[str] = typer.Option(None, "--model", help="The model id suspended with --model (default: the global switch)."),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="The tenant suspended with --tenant or a per-tenant trip rule."),
    config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE,
) -> None:
    """Lift a suspension."""
    from charter.gateway.control import KillSwitch

    scope = _scope(model, tenant)
    _, engine, log = _db(config, database)
    was = KillSwitch(engine, log).resume(scope, actor="cli")
    console.print(f"resumed {scope}" + ("" if was else " (it was not suspended)"), highlight=False)


@admin_app.command("status")
@handle_errors
def status(config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE) -> None:
    """Suspensions in force and the audit log's size."""
    from charter.gateway.control import KillSwitch

    _, engine, log = _db(config, database)
    typer.echo(json.dumps({"suspensions": KillSwitch(engine, log).status(), "audit_entries": log.size()}, indent=2))


# -- incidents ------------------------------------------------------------------------------------
@incident_app.command("list")
@handle_errors
def incident_list(config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE) -> None:
    """Every incident, one line each."""
    from charter.gateway.control import Incidents

    _, engine, log = _db(config, database)
    for i in Incidents(engine, log).list():
        typer.echo(f"{i['id']}\t{i['status']}\t{i['opened']}\t{i['scope']}\t{i['reason']}")


@incident_app.command("report")
@handle_errors
def incident_report(
    incident_id: int = typer.Argument(..., help="Incident id (charter incident list)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write Markdown here (and JSON beside it) instead of printing."),
    config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE,
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


@incident_app.command("close")
@handle_errors
def incident_close(
    incident_id: int = typer.Argument(...), note: str = typer.Option("", "--note"),
    config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE,
) -> None:
    """Close an incident (resuming service is a separate, deliberate `charter admin resume`)."""
    from charter.gateway.control import Incidents

    _, engine, log = _db(config, database)
    Incidents(engine, log).close(incident_id, actor="cli", note=note)
    console.print(f"closed incident {incident_id}", highlight=False)


# -- audit ----------------------------------------------------------------------------------------
def _public_keys(paths: List[Path]):
    from charter.provenance.keys import load_public_key

    return [load_public_key(p) for p in paths] if paths else None


def _audit_db(config: Optional[Path], database: Optional[str]):
    """As _db, with the log as the gateway configures it (witness, earlier runtime keys): checkpoints
    signed by CLI commands are witnessed too."""
    from charter.gateway.state import audit_log

    cfg, engine, _ = _db(config, database)
    return cfg, engine, audit_log(cfg, engine)


@audit_app.command("verify")
@handle_errors
def audit_verify(
    public_key: List[Path] = typer.Option([], "--public-key", help="Pin the checkpoint signer(s) (the gateway's runtime public key)."),
    trusted: Optional[Path] = typer.Option(None, "--trusted", help="Checkpoints kept elsewhere (a witness file): "
                                           "the log must contain each and still have its root."),
    config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE,
) -> None:
    """Walk the hash chain and check every signed checkpoint and signed purge; exit 1 naming the first bad entry."""
    from charter.audit import load_trusted
    from charter.cli._common import record_progress

    records = load_trusted(trusted) if trusted is not None else None
    _, _, log = _db(config, database)
    total = log.size()
    done = [0]
    with record_progress("verifying audit log") as update:

        def step(n: int) -> None:
            done[0] += n
            update(done[0], total, "chain")

        rep = log.verify(_public_keys(public_key), progress=step, trusted=records)
    if not rep.ok:
        raise VerificationError(f"audit log: first bad entry {rep.first_bad}: {rep.problem}")
    console.print(f"audit log ok: {rep.entries} entries ({rep.purged} purged by retention), {rep.checkpoints} signed "
                  f"checkpoints verified, {rep.unanchored} entries after the last checkpoint (chain only)", highlight=False)
    if records is not None:
        console.print(f"all {rep.trusted} trusted checkpoints from {trusted} are in the log", highlight=False)
    for n in rep.notes:
        console.print(f"note: {n}", highlight=False)


@audit_app.command("export")
@handle_errors
def audit_export(
    out: Path = typer.Option(..., "--out", "-o", help="JSONL file: a signed checkpoint, then entries with inclusion proofs."),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="Only this tenant's entries."),
    since: Optional[str] = typer.Option(None, "--since", help="ISO time (UTC), inclusive."),
    until: Optional[str] = typer.Option(None, "--until", help="ISO time (UTC), exclusive."),
    config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE,
) -> None:
    """Export entries for a regulator (file mode 0600); `charter audit verify-export` checks it offline."""
    cfg, _, log = _audit_db(config, database)
    r = log.export(out, _runtime_key(cfg), tenant=tenant, since=_iso(since, "--since"), until=_iso(until, "--until"))
    console.print(f"exported {r['entries']} entries to {r['path']} (checkpoint of {r['tree_size']} entries, "
                  f"root {r['root_hash'][:16]}…)", highlight=False)


@audit_app.command("verify-export")
@handle_errors
def audit_verify_export(
    file: Path = typer.Argument(..., help="An export from `charter audit export`."),
    public_key: Path = typer.Option(..., "--public-key", help="The gateway's runtime public key."),
) -> None:
    """Check an export with the public key alone: each entry's hash and its inclusion proof."""
    from charter.audit import verify_export
    from charter.provenance.keys import load_public_key

    r = verify_export(file, load_public_key(public_key))
    console.print(f"export ok: {r['entries']} entries included in the signed log of {r['tree_size']} entries "
                  f"(checkpoint {r['checkpoint_time']})", highlight=False)


@audit_app.command("checkpoint")
@handle_errors
def audit_checkpoint(
    witness: Optional[Path] = typer.Option(None, "--witness", help="Also append the checkpoint record to this file "
                                           "(JSON lines, 0600): what `audit verify --trusted` reads."),
    config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE,
) -> None:
    """Sign the current tree head now (chained to the previous checkpoint)."""
    from charter.audit.witness import append_record

    cfg, _, log = _audit_db(config, database)
    cp = log.checkpoint(_runtime_key(cfg))
    if cp is None:
        raise InputError("the audit log is empty", source="audit")
    if witness is not None:  # the latest checkpoint, new or not: what the auditor now holds
        try:
            append_record(witness, cp.record())
        except OSError as exc:
            raise InputError(f"cannot write the witness file: {exc.strerror or exc}", source=str(witness)) from None
    console.print(f"checkpoint {cp.id}: {cp.tree_size} entries, root {cp.root_hash}", highlight=False)


@audit_app.command("prove")
@handle_errors
def audit_prove(
    seq: Optional[int] = typer.Argument(None, help="Entry whose inclusion to prove."),
    from_size: Optional[int] = typer.Option(None, "--from-size", help="Instead: a consistency proof from this tree size..."),
    to_size: Optional[int] = typer.Option(None, "--to-size", help="...to this one (default: the latest checkpoint)."),
    config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE,
) -> None:
    """Print an RFC 6962 inclusion or consistency proof against the latest signed checkpoint."""
    cfg, _, log = _audit_db(config, database)
    cp = log.checkpoint(_runtime_key(cfg))
    if cp is None:
        raise InputError("the audit log is empty", source="audit")
    if from_size is not None:
        to = to_size or cp.tree_size
        if not 0 < from_size <= to <= cp.tree_size:
            raise InputError(f"sizes must satisfy 0 < --from-size <= --to-size <= {cp.tree_size}", source="--from-size")
        typer.echo(json.dumps({"old_size": from_size, "new_size": to, "consistency_proof": log.consistency_proof(from_size, to)}, indent=2))
        return
    if seq is None or not 0 <= seq < cp.tree_size:
        raise InputError(f"give an entry number below {cp.tree_size}", source="SEQ")
    e = next(log.entries(after_seq=seq - 1, limit=1))
    typer.echo(json.dumps({"entry": e.to_dict(), "tree_size": cp.tree_size, "root_hash": cp.root_hash,
                           "checkpoint_envelope": cp.envelope, "inclusion_proof": log.inclusion_proof(seq, cp.tree_size)}, indent=2))


@audit_app.command("purge")
@handle_errors
def audit_purge(
    older_than_days: Optional[float] = typer.Option(None, "--older-than-days", help="Default: the config's retention_days."),
    reason: str = typer.Option("retention period", "--reason", help="Recorded in the signed purge entry."),
    config: Optional[Path] = _CONFIG, database: Optional[str] = _DATABASE,
) -> None:
    """Retention: drop the content of old entries, keeping their hashes so the log stays verifiable.
    The purge is itself an entry, signed with the runtime key (who, cutoff, reason)."""
    cfg, _, log = _audit_db(config, database)
    days = older_than_days or cfg.server.retention_days
    if not days:
        raise InputError("no retention period: pass --older-than-days or set [server] retention_days", source="--older-than-days")
    cutoff = audit_time_ago(days * 86400)
    n = log.purge(cutoff, _runtime_key(cfg), actor="cli", reason=reason)
    console.print(f"purged the content of {n} entries older than {cutoff}", highlight=False)


def _iso(value: Optional[str], flag: str) -> Optional[str]:
    """Accept 2026-01-31 or a full ISO time; store-format (UTC, microseconds, Z) for comparison."""
    if value is None:
        return None
    try:
        return audit_time(parse_time(value))
    except ValueError:
        raise InputError(f"not an ISO date or time: {value!r}", source=flag) from None
