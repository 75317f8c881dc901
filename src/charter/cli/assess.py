"""``charter assess``: the pre-launch safety assessment (TC260-003 structure)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from charter.cli._common import console, handle_errors, run_with_progress

MODEL_HELP = "embedded | hf:PATH | gguf:PATH | llamacpp:PATH | openai:URL#MODEL"
_VERDICT_STYLE = {
    "PASS": "bold green",
    "FAIL": "bold red",
    "INSUFFICIENT": "bold yellow",
    "NOT ASSESSED": "dim",
    "INCOMPLETE": "bold yellow",
}


def assess(
    model: str = typer.Option(..., "--model", "-m", help=f"The model behind the service. {MODEL_HELP}"),
    profile: list[str] = typer.Option(
        [],
        "--profile",
        "-p",
        help="Compliance profile(s) with [assessment] figures "
        "(cac-genai: TC260-003 as commonly cited); several compose to the stricter figure.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output directory: assessment.json, report.md, assessment.png, samples_*.jsonl, answers.jsonl.",
    ),
    guard: Optional[Path] = typer.Option(
        None, "--guard", "-g", help="Guard directory (charter guard train) that judges corpus records and answers."
    ),
    corpus: list[Path] = typer.Option(
        [],
        "--corpus",
        help="Training data file(s): JSONL/JSON/CSV/TXT (TRL messages, prompt+completion, "
        "prompt/chosen/rejected, HH-RLHF transcripts, text). Default: a sealed hf: model's data.",
    ),
    corpus_column: Optional[str] = typer.Option(
        None, "--corpus-column", help="Field holding the training text (default: detected)."
    ),
    questions: Optional[Path] = typer.Option(None, "--questions", help="Generated-content test question bank."),
    questions_column: Optional[str] = typer.Option(None, "--questions-column"),
    questions_where: Optional[str] = typer.Option(
        None, "--questions-where", help="Keep rows with COLUMN=VALUE (default: all)."
    ),
    refuse_bank: Optional[Path] = typer.Option(None, "--refuse-bank", help="Should-refuse bank."),
    refuse_column: Optional[str] = typer.Option(None, "--refuse-column"),
    refuse_where: Optional[str] = typer.Option(
        None, "--refuse-where", help="COLUMN=VALUE or none (default: label=unsafe when the file has a label column)."
    ),
    answer_bank: Optional[Path] = typer.Option(None, "--answer-bank", help="Should-not-refuse bank."),
    answer_column: Optional[str] = typer.Option(None, "--answer-column"),
    answer_where: Optional[str] = typer.Option(
        None, "--answer-where", help="COLUMN=VALUE or none (default: label=safe when the file has a label column)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the samples (and of sampling when --temperature > 0)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Prompts generated per batch."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Token limit of each answer."),
    temperature: float = typer.Option(0.0, "--temperature", help="Sampling temperature (0 = greedy)."),
    as_served: bool = typer.Option(
        False, "--as-served", help="Count guard blocks as refusals (the service behind charter serve)."
    ),
    require_interval: bool = typer.Option(
        False, "--require-interval", help="PASS only when the whole 95% interval clears the threshold."
    ),
    corpus_samples: Optional[int] = typer.Option(
        None, "--corpus-samples", help="Override: training records to sample."
    ),
    corpus_min_qualified: Optional[float] = typer.Option(
        None, "--corpus-min-qualified", help="Override: minimum qualified share (0-1)."
    ),
    answer_samples: Optional[int] = typer.Option(None, "--answer-samples", help="Override: questions to answer."),
    answer_min_qualified: Optional[float] = typer.Option(
        None, "--answer-min-qualified", help="Override: minimum qualified share of answers."
    ),
    refusal_samples: Optional[int] = typer.Option(
        None, "--refusal-samples", help="Override: prompts per refusal bank."
    ),
    min_refused: Optional[float] = typer.Option(
        None, "--min-refused", help="Override: minimum refused share of the should-refuse bank."
    ),
    max_over_refused: Optional[float] = typer.Option(
        None, "--max-over-refused", help="Override: maximum refused share of the should-not-refuse bank."
    ),
    check: bool = typer.Option(False, "--check", help="Exit 1 unless the conclusion is PASS."),
) -> None:
    """Pre-launch safety assessment in the structure of TC260-003: corpus sampling, generated-content sampling,
    refusal and non-refusal banks, each with its 95% interval against the profile's threshold. Resumable."""
    from charter.governance.assess import AssessmentConfig, SafetyAssessment, threshold_text

    s = lambda p: str(p) if p is not None else None  # noqa: E731
    cfg = AssessmentConfig(
        model=model,
        out=str(out),
        profiles=tuple(profile),
        guard=s(guard),
        corpus=tuple(str(c) for c in corpus),
        corpus_column=corpus_column,
        questions=s(questions),
        questions_column=questions_column,
        questions_where=questions_where,
        refuse_bank=s(refuse_bank),
        refuse_column=refuse_column,
        refuse_where=refuse_where,
        answer_bank=s(answer_bank),
        answer_column=answer_column,
        answer_where=answer_where,
        seed=seed,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        as_served=as_served,
        require_interval=require_interval,
        corpus_samples=corpus_samples,
        corpus_min_qualified=corpus_min_qualified,
        answer_samples=answer_samples,
        answer_min_qualified=answer_min_qualified,
        refusal_samples=refusal_samples,
        min_refused=min_refused,
        max_over_refused=max_over_refused,
    )
    r = run_with_progress(SafetyAssessment(cfg), "assessing")
    table = Table(title=f"safety assessment: {model} ({' + '.join(r['profiles'])})")
    for col in ("§", "check", "n / required", "share [95% CI]", "threshold", "verdict"):
        table.add_column(col)
    for ch in r["checks"]:
        share = (
            "–"
            if ch.get("share") is None
            else f"{100 * ch['share']:.1f}% [{100 * ch['ci95'][0]:.1f}, {100 * ch['ci95'][1]:.1f}]"
        )
        thr = threshold_text(ch["bound"], ch.get("threshold"))
        table.add_row(
            ch["section"],
            ch["title"],
            f"{ch.get('n', '–')} / {ch.get('required_n') or '–'}",
            share,
            thr,
            f"[{_VERDICT_STYLE[ch['verdict']]}]{ch['verdict']}[/]",
        )
    console.print(table)
    verdict = r["conclusion"]["verdict"]
    console.print(f"conclusion: [{_VERDICT_STYLE[verdict]}]{verdict}[/]", highlight=False)
    if r["conclusion"]["weaker_than_profile"]:
        console.print(
            "overridden below the profile: " + "; ".join(r["conclusion"]["weaker_than_profile"]),
            highlight=False,
            markup=False,
        )
    console.print(
        f"report: {out / 'report.md'}  "
        "(thresholds are the profile's: check them against the current text of the standard)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if check and verdict != "PASS":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("assess")(handle_errors(assess))
