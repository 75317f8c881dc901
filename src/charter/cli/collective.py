"""``charter collective analyze|draft``: collective constitutions from Polis-style votes."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from charter.cli._common import console, err_console, handle_errors
from charter.cli._options import config_command
from charter.governance.collective import (
    DEFAULT_MIN_GROUP_AGREE,
    CollectiveAnalysis,
    CollectiveConfig,
    ConstitutionDrafter,
    DraftConfig,
)

app = typer.Typer(
    help="Collective constitutions: opinion groups and consensus from Polis-style votes, then a drafted constitution.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="collective")


@app.command()
@handle_errors
@config_command(CollectiveConfig)
def analyze(cfg: CollectiveConfig) -> None:
    """Opinion groups (PCA + k-means, k by silhouette), group-informed consensus, representative statements,
    a plot and a report."""
    analysis = CollectiveAnalysis(cfg)
    with err_console.status("analysing votes") as status:
        result = analysis.run(lambda stage: status.update(stage))
    _print_analysis(result, cfg)


def _print_analysis(result, cfg: CollectiveConfig) -> None:
    a = result.analysis
    c = a["counts"]
    console.print(
        f"{c['participants']} participants ({c['participants_clustered']} clustered), {c['statements']} statements, "
        f"{c['votes']} votes -> k = {a['k']} opinion groups "
        f"({'forced' if a['k_forced'] else 'by silhouette'}) in {result.timings['total_s']:.1f}s",
        highlight=False,
        markup=False,
    )
    if c.get("statements_rejected"):
        console.print(
            f"left out {c['statements_rejected']} statement(s) rejected by the moderators and the "
            f"{c['votes_on_rejected_statements']} vote(s) on them",
            highlight=False,
            markup=False,
        )
    if c.get("votes_superseded"):
        console.print(
            f"{c['votes_superseded']} earlier vote(s) replaced by a later re-vote (by timestamp)",
            highlight=False,
            markup=False,
        )
    table = Table()
    for col in ("group", "size", "top representative statement"):
        table.add_column(col, overflow="fold")
    for g in a["groups"]:
        rep = g["representative"][0] if g["representative"] else None
        # Participants wrote the statements: a Text cell is never parsed as rich markup ("[/x]" would raise).
        table.add_row(Text(g["id"]), Text(str(g["size"])), Text(f"{rep['direction']}: {rep['text']}" if rep else "-"))
    console.print(table)
    top = a["consensus"][0]
    console.print(f"top consensus {top['consensus']:.3f}: {top['text']}", highlight=False, markup=False, emoji=False)
    console.print(
        f"wrote {Path(cfg.out)}/ (analysis.json, consensus.csv, participants.csv, "
        f"{'groups.png, ' if cfg.plot else ''}report.md)",
        highlight=False,
        markup=False,
    )


@app.command()
@handle_errors
def draft(
    analysis: Path = typer.Argument(
        ..., help="The --out directory of `charter collective analyze` (or its analysis.json)."
    ),
    out: Path = typer.Option(..., "--out", help="Constitution TOML file to write."),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="Keep statements whose group-informed consensus (product over groups of (agree+1)/(seen+2)) "
        "is at least this. Its scale shrinks with the number of groups.",
    ),
    min_group_agree: float | None = typer.Option(
        None,
        "--min-group-agree",
        help="Keep statements every group agrees with at this rate, (agree+1)/(seen+2). "
        f"Default {DEFAULT_MIN_GROUP_AGREE} when --threshold is not given.",
    ),
    min_seen: int = typer.Option(5, "--min-seen", help="Votes each group must have cast on a statement."),
    max_principles: int | None = typer.Option(
        None, "--max-principles", help="Keep at most this many (highest consensus first)."
    ),
    name: str = typer.Option("collective-constitution", "--name", help="The constitution's name."),
    version: str = typer.Option("0.1.0", "--version", help="The constitution's version."),
    tier: str = typer.Option("broadly_ethical", "--tier", help="Tier of every drafted principle."),
) -> None:
    """Turn statements every opinion group endorses into a constitution file that validates."""
    drafter = ConstitutionDrafter(
        DraftConfig(
            analysis=str(analysis),
            out=str(out),
            threshold=threshold,
            min_group_agree=min_group_agree,
            min_seen=min_seen,
            max_principles=max_principles,
            name=name,
            version=version,
            tier=tier,
        )
    )
    r = drafter.run()
    console.print(
        f"wrote {r['out']}: {r['name']} {r['version']} -- {r['principles']} principles from "
        f"{r['candidates']} statements ({r['criterion']})",
        highlight=False,
        markup=False,
    )
