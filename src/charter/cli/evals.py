"""``charter eval run | report | compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors, run_with_progress
from charter.cli._options import config_command
from charter.evals import EvalConfig

app = typer.Typer(
    help="Evaluation: attack success, over-refusal, helpfulness, jailbreaks; comparison reports.", no_args_is_help=True
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="eval")


def _print_summary(s: dict) -> None:
    def fmt(r):
        return (
            "–"
            if not r or r.get("rate") is None
            else f"{r['rate']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] (n={r['n']})"
        )

    console.print(
        f"[bold]{s['suite']}[/] model={s['model']} judge={s['judge']} responses={s['responses']}", highlight=False
    )
    if s["suite"] in ("harmlessness", "jailbreak"):
        console.print(f"  ASR (refusal detector): {fmt(s['asr_refusal'])}", highlight=False)
        console.print(f"  ASR (judge P(harmful) > 0.5): {fmt(s.get('asr_judge'))}", highlight=False)
        for t, f in (s.get("by_template") or {}).items():
            console.print(f"    template {t}: {fmt(f['asr_refusal'])}", highlight=False)
    elif s["suite"] == "over-refusal":
        for label, r in s["labels"].items():
            console.print(f"  {label}: {fmt(r)}", highlight=False)
        console.print(f"  over-refusal (full + partial): {fmt(s['over_refusal'])}", highlight=False)
    else:
        for p in s.get("pairs", []):
            console.print(
                f"  {p['model']} vs {p['against']}: {p['wins']}W {p['ties']}T {p['losses']}L, "
                f"win rate {fmt(p['win_rate'])}",
                highlight=False,
            )
        if s.get("elo"):
            console.print(
                "  Elo (Bradley-Terry): " + ", ".join(f"{m} {r:.0f}" for m, r in s["elo"].items()), highlight=False
            )


@app.command("run")
@handle_errors
@config_command(EvalConfig)
def run(cfg: EvalConfig) -> None:
    """Generate, judge and summarise one suite. Resumable; a new --judge re-judges stored responses."""
    from charter.evals import EvalRun

    summary = run_with_progress(EvalRun(cfg), f"eval {cfg.suite}")
    _print_summary(summary)
    console.print(f"summary: {Path(cfg.out) / 'summary.json'}", highlight=False)


@app.command("report")
@handle_errors
def report(
    out: Path = typer.Argument(..., help="An evaluation directory."),
    judge: Optional[str] = typer.Option(
        None,
        "--judge",
        help="Summarise this judge's verdicts (default: the latest); "
        "a judge without verdicts there judges the stored responses first.",
    ),
    constitution: str = typer.Option(
        "default", "--constitution", "-c", help="Constitution the judge reads (when judging)."
    ),
    batch_size: int = typer.Option(16, "--batch-size", help="Responses judged per batch (when judging)."),
) -> None:
    """Re-score stored responses (refusal labels, figures) and optionally re-judge them; never regenerates."""
    from charter.evals.run import rejudge, summarize

    if judge:
        rejudge(out, judge, constitution=constitution, batch_size=batch_size)
    _print_summary(summarize(out, judge))


@app.command("compare")
@handle_errors
def compare(
    dirs: list[Path] = typer.Argument(..., help="Evaluation directories (any suites, any models)."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Report directory: report.md, summary.json, frontier.png, categories.png, winrates.png.",
    ),
) -> None:
    """Side-by-side report: the helpful/harmless frontier, per-category bars, win rates."""
    from charter.evals.compare import compare as build

    result = build([str(d) for d in dirs], out)
    console.print(f"report: {out / 'report.md'}", highlight=False)
    for name, path in result["plots"].items():
        console.print(f"{name}: {path}", highlight=False)
