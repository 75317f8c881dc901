"""``charter guard synth | train | check | eval`` (constitutional classifiers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors, run_with_progress
from charter.cli._options import config_command
from charter.core.errors import InputError
from charter.guard.config import GuardTrainConfig, SynthConfig

app = typer.Typer(help="Constitutional classifiers: train and run the guard.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="guard")


@app.command("synth")
@handle_errors
@config_command(SynthConfig)
def synth(cfg: SynthConfig) -> None:
    """Synthetic classifier data from the constitution's prohibited and allowed categories."""
    from charter.guard.synth import Synthesizer

    summary = run_with_progress(Synthesizer(cfg), "guard synth")
    pair_note = (
        f", {summary['pairs']['train']} + {summary['pairs']['val']} preference pairs"
        if summary["pairs"]["train"]
        else ""
    )
    console.print(
        f"{summary['train']} train / {summary['val']} validation records{pair_note}, {summary['duplicates_dropped']} "
        f"near-duplicates dropped -> {Path(cfg.out)}",
        highlight=False,
    )
    if summary["answers_left_unlabelled"]:
        console.print(
            f"{summary['answers_left_unlabelled']} answers to harmful requests left out "
            "(no rule labels them): label them in "
            f"{Path(cfg.out) / 'unlabelled_answers.jsonl'} and pass it with --labelled-outputs",
            highlight=False,
        )


@app.command("train")
@handle_errors
@config_command(GuardTrainConfig)
def train(cfg: GuardTrainConfig) -> None:
    """Train the classifiers (stage 1 per side, the stage-2 exchange head) and calibrate their thresholds."""
    from charter.guard.training import GuardTrainer

    metrics = run_with_progress(GuardTrainer(cfg), "guard train")
    for side, m in metrics.items():
        console.print(
            f"{side}: AUROC {m['auroc']:.3f}, TPR {m['tpr_at_1pct_fpr']:.3f} at 1% FPR, "
            f"{m['tpr_at_5pct_fpr']:.3f} at 5%; "
            f"calibrated threshold: TPR {m['tpr']:.3f}, FPR {m['fpr']:.3f}"
            + (f"; pairwise {m['pairwise_accuracy']:.3f}" if "pairwise_accuracy" in m else "")
            + f" (validation: {m['n_harmful']} harmful, {m['n_benign']} benign)",
            highlight=False,
        )
    console.print(f"guard: {Path(cfg.out) / 'guard.json'}", highlight=False)


@app.command("check")
@handle_errors
def check(
    guard: Path = typer.Option(..., "--guard", "-g", help="Guard directory."),
    text: Optional[str] = typer.Option(None, "--text", "-t", help="Text to check."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="File whose text to check."),
    side: str = typer.Option("input", "--side", help="input (a user prompt) or output (an assistant output)."),
    probe_model: Optional[str] = typer.Option(
        None, "--probe-model", help="Use the guard's stage-1b probe on this model (the one it was fitted on)."
    ),
    judge: Optional[str] = typer.Option(
        None, "--judge", help="Stage-2 exchange classifier model (escalated texts only)."
    ),
    constitution: str = typer.Option("default", "--constitution", "-c", help="Constitution the stage-2 judge reads."),
) -> None:
    """Check one text; prints the decision with stage scores and latency. Exit 3 when blocked."""
    from charter.backends import load_backend
    from charter.guard.model import Guard

    if (text is None) == (file is None):
        raise InputError("give exactly one of --text or --file", source="--text")
    if file is not None and not file.is_file():
        raise InputError("no such file", source=str(file))
    content = text if text is not None else file.read_text(encoding="utf-8")  # type: ignore[union-attr]
    exchange = None
    if judge:
        from charter.constitution import load_constitution
        from charter.guard.exchange import ExchangeClassifier

        exchange = ExchangeClassifier(load_backend(judge), load_constitution(constitution))
    g = Guard.load(guard, exchange=exchange, probe_backend=load_backend(probe_model) if probe_model else None)
    decision = g.check_input(content) if side == "input" else g.check_output(content)
    console.print_json(json.dumps(decision.to_dict()))
    if decision.block:
        raise typer.Exit(3)


@app.command("eval")
@handle_errors
def evaluate(
    guard: Path = typer.Option(..., "--guard", "-g", help="Guard directory."),
    harmful: Path = typer.Option(..., "--harmful", help="Harmful prompts (e.g. AdvBench)."),
    benign: Path = typer.Option(..., "--benign", help="Benign prompts (XSTest: label=safe rows are used)."),
    outputs: Optional[Path] = typer.Option(
        None, "--outputs", help="JSONL of assistant outputs with label harmful|benign (output side)."
    ),
    pairs: Optional[Path] = typer.Option(
        None, "--pairs", help="HH-RLHF-format chosen/rejected JSONL: pairwise accuracy of the output side."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for guard_eval.json, roc.png and reliability.png."),
    column: Optional[str] = typer.Option(None, "--column", help="Prompt column."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most this many prompts per file."),
) -> None:
    """TPR, FPR, AUROC, escalation rate and cost per request of the cascade; ROC plot."""
    from charter.guard.evaluate import evaluate_guard
    from charter.guard.model import Guard

    r = evaluate_guard(
        Guard.load(guard),
        harmful=str(harmful),
        benign=str(benign),
        outputs=str(outputs) if outputs else None,
        out=out,
        column=column,
        limit=limit,
        pairs=str(pairs) if pairs else None,
    )
    for side in ("input", "output"):
        f = r.get(side, {})
        if "tpr" in f:
            console.print(
                f"{side}: TPR {f['tpr']['rate']:.3f}  FPR {f['fpr']['rate']:.3f}  AUROC {f['auroc_stage1']:.3f}  "
                f"TPR@1%FPR {f['tpr_at_1pct_fpr']:.3f}  TPR@5%FPR {f['tpr_at_5pct_fpr']:.3f}  ECE {f['ece']:.3f}  "
                f"escalated {f['escalation_rate']['rate']:.3f}  cost {f['cost_ms']['mean']:.1f} ms mean, "
                f"{f['cost_ms']['p99']:.1f} ms p99",
                highlight=False,
            )
        if "pairwise" in f:
            pw = f["pairwise"]
            console.print(
                f"{side} pairwise ({pw['n_pairs']} pairs): stage 1 {pw['accuracy_stage1']:.3f}"
                + (f", stage 2 {pw['accuracy_stage2']:.3f}" if "accuracy_stage2" in pw else ""),
                highlight=False,
            )
    console.print(
        f"results: {out / 'guard_eval.json'}  ROC: {r['roc_png']}  reliability: {r['reliability_png']}", highlight=False
    )
