"""``charter audit``: verify, export, prove, checkpoint and purge the tamper-evident log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors
from charter.cli._gateway import CONFIG_OPTION as _CONFIG
from charter.cli._gateway import DATABASE_OPTION as _DATABASE
from charter.cli._gateway import audit_db as _audit_db
from charter.cli._gateway import open_db as _db
from charter.cli._gateway import public_keys as _public_keys
from charter.cli._gateway import runtime_key as _runtime_key
from charter.core.clock import audit_time, parse_time
from charter.core.errors import InputError, VerificationError

app = typer.Typer(help="The tamper-evident audit log: verify, export, prove, checkpoint, purge.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="audit")


@app.command("verify")
@handle_errors
def audit_verify(
    public_key: list[Path] = typer.Option(
        [], "--public-key", help="Pin the checkpoint signer(s) (the gateway's runtime public key)."
    ),
    trusted: Optional[Path] = typer.Option(
        None,
        "--trusted",
        help="Checkpoints kept elsewhere (a witness file): the log must contain each and still have its root.",
    ),
    config: Optional[Path] = _CONFIG,
    database: Optional[str] = _DATABASE,
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
    console.print(
        f"audit log ok: {rep.entries} entries ({rep.purged} purged by retention), {rep.checkpoints} signed "
        f"checkpoints verified, {rep.unanchored} entries after the last checkpoint (chain only)",
        highlight=False,
    )
    if records is not None:
        console.print(f"all {rep.trusted} trusted checkpoints from {trusted} are in the log", highlight=False)
    for n in rep.notes:
        console.print(f"note: {n}", highlight=False)


@app.command("export")
@handle_errors
def audit_export(
    out: Path = typer.Option(
        ..., "--out", "-o", help="JSONL file: a signed checkpoint, then entries with inclusion proofs."
    ),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="Only this tenant's entries."),
    since: Optional[str] = typer.Option(None, "--since", help="ISO time (UTC), inclusive."),
    until: Optional[str] = typer.Option(None, "--until", help="ISO time (UTC), exclusive."),
    config: Optional[Path] = _CONFIG,
    database: Optional[str] = _DATABASE,
) -> None:
    """Export entries for a regulator (file mode 0600); `charter audit verify-export` checks it offline."""
    cfg, _, log = _audit_db(config, database)
    r = log.export(out, _runtime_key(cfg), tenant=tenant, since=_iso(since, "--since"), until=_iso(until, "--until"))
    console.print(
        f"exported {r['entries']} entries to {r['path']} (checkpoint of {r['tree_size']} entries, "
        f"root {r['root_hash'][:16]}…)",
        highlight=False,
    )


@app.command("verify-export")
@handle_errors
def audit_verify_export(
    file: Path = typer.Argument(..., help="An export from `charter audit export`."),
    public_key: Path = typer.Option(..., "--public-key", help="The gateway's runtime public key."),
) -> None:
    """Check an export with the public key alone: each entry's hash and its inclusion proof."""
    from charter.audit import verify_export
    from charter.provenance.keys import load_public_key

    r = verify_export(file, load_public_key(public_key))
    console.print(
        f"export ok: {r['entries']} entries included in the signed log of {r['tree_size']} entries "
        f"(checkpoint {r['checkpoint_time']})",
        highlight=False,
    )


@app.command("checkpoint")
@handle_errors
def audit_checkpoint(
    witness: Optional[Path] = typer.Option(
        None,
        "--witness",
        help="Also append the checkpoint record to this file (JSON lines, 0600): what `audit verify --trusted` reads.",
    ),
    config: Optional[Path] = _CONFIG,
    database: Optional[str] = _DATABASE,
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


@app.command("prove")
@handle_errors
def audit_prove(
    seq: Optional[int] = typer.Argument(None, help="Entry whose inclusion to prove."),
    from_size: Optional[int] = typer.Option(
        None, "--from-size", help="Instead: a consistency proof from this tree size..."
    ),
    to_size: Optional[int] = typer.Option(None, "--to-size", help="...to this one (default: the latest checkpoint)."),
    config: Optional[Path] = _CONFIG,
    database: Optional[str] = _DATABASE,
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
        typer.echo(
            json.dumps(
                {"old_size": from_size, "new_size": to, "consistency_proof": log.consistency_proof(from_size, to)},
                indent=2,
            )
        )
        return
    if seq is None or not 0 <= seq < cp.tree_size:
        raise InputError(f"give an entry number below {cp.tree_size}", source="SEQ")
    e = next(log.entries(after_seq=seq - 1, limit=1))
    typer.echo(
        json.dumps(
            {
                "entry": e.to_dict(),
                "tree_size": cp.tree_size,
                "root_hash": cp.root_hash,
                "checkpoint_envelope": cp.envelope,
                "inclusion_proof": log.inclusion_proof(seq, cp.tree_size),
            },
            indent=2,
        )
    )


@app.command("purge")
@handle_errors
def audit_purge(
    older_than_days: Optional[float] = typer.Option(
        None, "--older-than-days", help="Default: the config's retention_days."
    ),
    reason: str = typer.Option("retention period", "--reason", help="Recorded in the signed purge entry."),
    config: Optional[Path] = _CONFIG,
    database: Optional[str] = _DATABASE,
) -> None:
    """Retention: drop the content of old entries, keeping their hashes so the log stays verifiable.
    The purge is itself an entry, signed with the runtime key (who, cutoff, reason)."""
    from charter.audit.retention import retention_cutoff

    cfg, _, log = _audit_db(config, database)
    cutoff = retention_cutoff(older_than_days or cfg.server.retention_days)
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
