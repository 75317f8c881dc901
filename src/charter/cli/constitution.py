"""``charter constitution validate|show|diff``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from charter.cli._common import console, handle_errors
from charter.cli._options import config_command
from charter.constitution import (
    bundled_names,
    canonical_json,
    constitution_digest,
    diff_constitutions,
    load_constitution,
)
from charter.core.errors import InputError
from charter.governance.drift import DriftConfig

app = typer.Typer(help="Validate, show and compare constitution files.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="constitution")


@app.command()
@handle_errors
def validate(file: Path = typer.Argument(..., help="Constitution TOML file.")) -> None:
    """Check a constitution file; errors name the file, line and field (exit 2)."""
    if not file.is_file():
        raise InputError("no such file", source=str(file))
    c = load_constitution(file)
    console.print(
        f"ok: {c.name} {c.version} -- {len(c.principles)} principles "
        f"({len(c.hard_constraints)} hard constraints), {len(c.tiers)} tiers, "
        f"{len(c.categories.prohibited)}+{len(c.categories.allowed)} content categories; "
        f"digest {constitution_digest(c)}",
        highlight=False,
    )


@app.command()
@handle_errors
def show(
    ref: str = typer.Argument(..., help=f"A TOML file or a bundled name ({', '.join(bundled_names())})."),
    as_json: bool = typer.Option(False, "--json", help="Print the canonical JSON form (what the digest is over)."),
) -> None:
    """Print a constitution: tiers, principles, content categories and digest."""
    c = load_constitution(ref)
    if as_json:
        typer.echo(json.dumps(json.loads(canonical_json(c)), indent=2, ensure_ascii=False))
        return
    console.print(f"[bold]{c.name}[/] {c.version}  [dim]{constitution_digest(c)}[/]", highlight=False)
    if c.description:
        console.print(c.description, highlight=False)
    console.print("Priority: " + " > ".join(t.id for t in c.tiers), highlight=False)
    table = Table(show_lines=False)
    for col in ("id", "tier", "kind", "depth", "statement"):
        table.add_column(col, overflow="fold")
    for p in c.principles:
        depth = p.depth if isinstance(p.depth, str) else f"{p.depth[0]:.2f}-{p.depth[1]:.2f}"
        table.add_row(p.id, p.tier, p.kind.replace("_", " "), depth, p.statement)
    console.print(table)
    for side in ("prohibited", "allowed"):
        cats = getattr(c.categories, side)
        if cats:
            console.print(f"[bold]{side}[/]: " + ", ".join(x.id for x in cats), highlight=False)
    console.print(
        f"few-shot dialogues: {len(c.examples)} shared, {sum(len(p.examples) for p in c.principles)} per-principle",
        highlight=False,
    )
    console.print(f"refusal: {c.refusal}", highlight=False)


@app.command()
@handle_errors
def diff(
    old: str = typer.Argument(..., help="The earlier constitution (file or bundled name)."),
    new: str = typer.Argument(..., help="The later constitution (file or bundled name)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Principles added, removed and changed; tier moves; hard constraints changed."""
    d = diff_constitutions(load_constitution(old), load_constitution(new))
    if as_json:
        typer.echo(json.dumps(d.to_dict(), indent=2))
        return
    if d.identical:
        console.print(f"identical ({d.new_digest})", highlight=False)
        return
    lines = [f"{d.old_digest} -> {d.new_digest}"]
    if d.metadata_changed:
        lines.append(f"metadata changed: {', '.join(d.metadata_changed)}")
    if d.tiers_changed:
        lines.append("tier order changed")
    lines += [f"+ principle {p}" for p in d.added]
    lines += [f"- principle {p}" for p in d.removed]
    lines += [f"~ principle {c.principle}: {', '.join(c.fields)}" for c in d.changed]
    lines += [f"^ {m.principle}: tier {m.old_tier} -> {m.new_tier} ({m.direction})" for m in d.tier_moves]
    lines += [f"! hard constraint added: {p}" for p in d.hard_constraints_added]
    lines += [f"! hard constraint removed: {p}" for p in d.hard_constraints_removed]
    lines += [f"! hard constraint changed: {p}" for p in d.hard_constraints_changed]
    lines += [f"+ category {k}" for k in d.categories_added]
    lines += [f"- category {k}" for k in d.categories_removed]
    lines += [f"~ category {k}" for k in d.categories_changed]
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command()
@handle_errors
@config_command(DriftConfig)
def drift(
    old: str = typer.Argument(None, help="The earlier constitution (file or bundled name)."),
    new: str = typer.Argument(None, help="The later constitution (file or bundled name)."),
    history: Path = typer.Option(None, "--history", help="Audit every committed version of this file in git instead."),
    out: Path = typer.Option(
        None, "--out", help="Write drift.json (and, with --history, history.json + history.png) here."
    ),
    cfg: DriftConfig = None,  # type: ignore[assignment]
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Drift audit: principles matched by id and by meaning, each change classified, a drift score."""
    if history is not None:
        if old or new:
            raise InputError("give either two constitutions or --history FILE, not both", source="--history")
        _drift_history(history, out, cfg, as_json)
        return
    if not old or not new:
        raise InputError("give two constitutions (OLD NEW) or --history FILE", source="charter constitution drift")
    from charter.governance.drift import DriftAuditor, write_json

    report = DriftAuditor(cfg).compare(load_constitution(old), load_constitution(new))
    if out:
        write_json(report.to_dict(), out / "drift.json")
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    for line in report.lines():
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _drift_history(history: Path, out: Path | None, cfg: DriftConfig, as_json: bool) -> None:
    from charter.cli._common import err_console, record_progress
    from charter.governance.drift import is_shallow
    from charter.governance.drift_history import COLUMNS, audit_history, history_rows, history_table, write_history

    if is_shallow(history):
        err_console.print(
            "warning: this is a shallow git clone, so earlier versions are missing; fetch the full "
            "history (git fetch --unshallow, or actions/checkout with fetch-depth: 0)",
            highlight=False,
        )
    with record_progress("versions") as update:
        points = audit_history(history, cfg, lambda d, t: update(d, t, ""))
    if as_json:
        typer.echo(json.dumps(history_rows(points), indent=2))
    else:
        table = Table()
        for col in COLUMNS:
            table.add_column(col)
        for row in history_table(points):
            table.add_row(*row)
        console.print(table)
    if out:
        json_path, png = write_history(points, out, history)
        if not as_json:
            console.print(f"wrote {json_path} and {png}", highlight=False)
