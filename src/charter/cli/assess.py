"""``charter assess``: the pre-launch safety assessment (TC260-003 structure)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from charter.cli._common import console, handle_errors, run_with_progress
from charter.cli._options import config_command
from charter.governance.assess import AssessmentConfig, AssessmentResult

_VERDICT_STYLE = {
    "PASS": "bold green",
    "FAIL": "bold red",
    "INSUFFICIENT": "bold yellow",
    "NOT ASSESSED": "dim",
    "INCOMPLETE": "bold yellow",
}


@config_command(AssessmentConfig)
def assess(
    cfg: AssessmentConfig,
    check: bool = typer.Option(False, "--check", help="Exit 1 unless the conclusion is PASS."),
) -> None:
    """Pre-launch safety assessment in the structure of TC260-003: corpus sampling, generated-content sampling,
    refusal and non-refusal banks, each with its 95% interval against the profile's threshold. Resumable."""
    from charter.governance.assess import SafetyAssessment

    r = run_with_progress(SafetyAssessment(cfg), "assessing")
    _print_result(r, cfg)
    if check and r.conclusion.verdict != "PASS":
        raise typer.Exit(1)


def _print_result(r: AssessmentResult, cfg: AssessmentConfig) -> None:
    from charter.governance.assess import threshold_text

    table = Table(title=f"safety assessment: {cfg.model} ({' + '.join(r.profiles)})")
    for col in ("§", "check", "n / required", "share [95% CI]", "threshold", "verdict"):
        table.add_column(col)
    for ch in r.checks:
        share = "–" if ch.share is None else f"{100 * ch.share:.1f}% [{100 * ch.ci95[0]:.1f}, {100 * ch.ci95[1]:.1f}]"
        table.add_row(
            ch.section,
            ch.title,
            f"{'–' if ch.n is None else ch.n} / {ch.required_n or '–'}",
            share,
            threshold_text(ch.bound, ch.threshold),
            f"[{_VERDICT_STYLE[ch.verdict]}]{ch.verdict}[/]",
        )
    console.print(table)
    verdict = r.conclusion.verdict
    console.print(f"conclusion: [{_VERDICT_STYLE[verdict]}]{verdict}[/]", highlight=False)
    if r.conclusion.weaker_than_profile:
        console.print(
            "overridden below the profile: " + "; ".join(r.conclusion.weaker_than_profile),
            highlight=False,
            markup=False,
        )
    console.print(
        f"report: {Path(cfg.out) / 'report.md'}  "
        "(thresholds are the profile's: check them against the current text of the standard)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("assess")(handle_errors(assess))
