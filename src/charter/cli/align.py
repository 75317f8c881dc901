"""``charter align RECIPE``: the main job as one command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors, run_with_progress


def align(
    recipe: str = typer.Argument(
        ...,
        help="Recipe TOML file, or a bundled recipe: demo (minutes, the embedded model) "
        "or standard (the efficacy benchmark's scale).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output directory: one subdirectory per stage and align.json (the run's ledger)."
    ),
    restart_from: Optional[str] = typer.Option(
        None,
        "--restart-from",
        help="Redo this stage and every stage after it (guard, sl-cai, sft, preferences, dpo, eval, seal).",
    ),
) -> None:
    """Constitution -> guard -> SL-CAI -> SFT -> preferences -> DPO -> evaluation -> seal, resumable stage by stage."""
    from charter.align import AlignConfig, AlignRun

    summary = run_with_progress(AlignRun(AlignConfig(recipe=recipe, out=str(out), restart_from=restart_from)), "align")
    for stage, entry in summary["stages"].items():
        note = "(done earlier)" if stage in summary["skipped"] else ""
        console.print(f"{stage:12s} {entry['dir']} {note}", highlight=False)
    report = summary["stages"].get("eval", {}).get("result", {}).get("report")
    if report:
        console.print(f"evaluation report: {report}", highlight=False)
    console.print(f"ledger: {out / 'align.json'}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("align")(handle_errors(align))


__all__ = ["register"]
