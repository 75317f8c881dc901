"""``charter guard train | check`` (constitutional classifiers; more stages to come, issue 6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from charter.cli._common import console, handle_errors, run_with_progress
from charter.errors import InputError

app = typer.Typer(help="Constitutional classifiers: train and run the guard.", no_args_is_help=True)


@app.command("synth")
@handle_errors
def synth(
    constitution: str = typer.Option(..., "--constitution", "-c", help="Constitution whose content categories define the data."),
    generator: str = typer.Option(..., "--generator", help="Model that writes requests and answers (embedded | hf:PATH | openai:URL#MODEL ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for train.jsonl, val.jsonl, synth.json."),
    per_category: int = typer.Option(8, "--per-category", help="Requests asked for per category and round."),
    rounds: int = typer.Option(1, "--rounds", help="Generations per category request (different seeds)."),
    category: List[str] = typer.Option([], "--category", help="Only these categories (repeatable)."),
    outputs: bool = typer.Option(True, "--outputs/--no-outputs", help="Also generate assistant outputs (output classifier data)."),
    augmentations: bool = typer.Option(True, "--augment/--no-augment", help="Jailbreak-style variants of harmful requests."),
    translator: Optional[str] = typer.Option(None, "--translator", help="Model that translates requests (adds translated variants)."),
    mix_harmful: List[Path] = typer.Option([], "--mix-harmful", help="Prompt file(s) mixed in as harmful (e.g. AdvBench)."),
    mix_benign: List[Path] = typer.Option([], "--mix-benign", help="Prompt file(s) mixed in as benign (XSTest: label=safe rows)."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Validation share within each category."),
    dedupe_threshold: float = typer.Option(0.95, "--dedupe-threshold", help="Cosine similarity above which near-duplicates are dropped."),
    seed: int = typer.Option(0, "--seed"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    batch_size: int = typer.Option(8, "--batch-size"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty output directory."),
) -> None:
    """Synthetic classifier data from the constitution's prohibited and allowed categories."""
    from charter.guard.synth import SynthConfig, Synthesizer

    cfg = SynthConfig(constitution=constitution, generator=generator, out=str(out), per_category=per_category, rounds=rounds,
                      categories=tuple(category), outputs=outputs, augmentations=augmentations, translator=translator,
                      mix_harmful=tuple(str(m) for m in mix_harmful), mix_benign=tuple(str(m) for m in mix_benign),
                      val_fraction=val_fraction, dedupe_threshold=dedupe_threshold, seed=seed,
                      max_new_tokens=max_new_tokens, batch_size=batch_size, overwrite=overwrite)
    summary = run_with_progress(Synthesizer(cfg), "guard synth")
    console.print(f"{summary['train']} train / {summary['val']} validation records, {summary['duplicates_dropped']} "
                  f"near-duplicates dropped -> {out}", highlight=False)


@app.command("train")
@handle_errors
def train(
    data: Path = typer.Option(..., "--data", "-d", help="Directory with train.jsonl and val.jsonl (text, label, side, category)."),
    out: Path = typer.Option(..., "--out", "-o", help="Guard directory (guard.json)."),
    target_fpr: float = typer.Option(0.01, "--target-fpr", help="Block threshold: this false-positive rate on benign validation texts."),
    escalation_fpr: float = typer.Option(0.05, "--escalation-fpr", help="Escalation threshold: benign share sent to stage 2."),
    probe_model: Optional[str] = typer.Option(None, "--probe-model", help="Also fit a stage-1b probe on this local model's hidden states (the served model)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing guard."),
) -> None:
    """Train stage-1 classifiers (inputs, outputs) and calibrate their thresholds."""
    from charter.guard.model import GuardTrainConfig, GuardTrainer

    metrics = GuardTrainer(GuardTrainConfig(data=str(data), out=str(out), target_fpr=target_fpr,
                                            escalation_fpr=escalation_fpr, probe_model=probe_model, overwrite=overwrite)).train()
    for side, m in metrics.items():
        console.print(f"{side}: AUROC {m['auroc']:.3f}, TPR {m['tpr']:.3f} at FPR {m['fpr']:.3f} "
                      f"(validation: {m['n_harmful']} harmful, {m['n_benign']} benign)", highlight=False)
    console.print(f"guard: {out / 'guard.json'}", highlight=False)


@app.command("check")
@handle_errors
def check(
    guard: Path = typer.Option(..., "--guard", "-g", help="Guard directory."),
    text: Optional[str] = typer.Option(None, "--text", "-t", help="Text to check."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="File whose text to check."),
    side: str = typer.Option("input", "--side", help="input (a user prompt) or output (an assistant output)."),
    probe_model: Optional[str] = typer.Option(None, "--probe-model", help="Use the guard's stage-1b probe on this model (the one it was fitted on)."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Stage-2 exchange classifier model (escalated texts only)."),
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
    outputs: Optional[Path] = typer.Option(None, "--outputs", help="JSONL of assistant outputs with label harmful|benign (output side)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for guard_eval.json and roc.png."),
    column: Optional[str] = typer.Option(None, "--column", help="Prompt column."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most this many prompts per file."),
) -> None:
    """TPR, FPR, AUROC, escalation rate and cost per request of the cascade; ROC plot."""
    from charter.guard.evaluate import evaluate_guard
    from charter.guard.model import Guard

    r = evaluate_guard(Guard.load(guard), harmful=str(harmful), benign=str(benign), outputs=str(outputs) if outputs else None,
                       out=out, column=column, limit=limit)
    for side in ("input", "output"):
        if side in r:
            f = r[side]
            console.print(f"{side}: TPR {f['tpr']['rate']:.3f}  FPR {f['fpr']['rate']:.3f}  AUROC {f['auroc_stage1']:.3f}  "
                          f"escalated {f['escalation_rate']['rate']:.3f}  cost {f['cost_ms']['mean']:.1f} ms mean, "
                          f"{f['cost_ms']['p99']:.1f} ms p99", highlight=False)
    console.print(f"results: {out / 'guard_eval.json'}  ROC: {r['roc_png']}", highlight=False)
