"""``charter guard synth | train | check | eval`` (constitutional classifiers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors, run_with_progress
from charter.core.errors import InputError

app = typer.Typer(help="Constitutional classifiers: train and run the guard.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="guard")


@app.command("synth")
@handle_errors
def synth(
    constitution: str = typer.Option(
        ..., "--constitution", "-c", help="Constitution whose content categories define the data."
    ),
    generator: str = typer.Option(
        ..., "--generator", help="Model that writes requests and answers (embedded | hf:PATH | openai:URL#MODEL ...)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for train.jsonl, val.jsonl, synth.json."),
    per_category: int = typer.Option(8, "--per-category", help="Requests asked for per category and round."),
    rounds: int = typer.Option(1, "--rounds", help="Generations per category request (different seeds)."),
    category: list[str] = typer.Option([], "--category", help="Only these categories (repeatable)."),
    outputs: bool = typer.Option(
        True, "--outputs/--no-outputs", help="Also generate assistant outputs (output classifier data)."
    ),
    augmentations: bool = typer.Option(
        True, "--augment/--no-augment", help="Jailbreak-style variants of requests (harmful and benign)."
    ),
    augmentations_per_request: int = typer.Option(
        1, "--augmentations-per-request", help="Variant kinds per request (drawn at random)."
    ),
    bundled: bool = typer.Option(
        True, "--bundled/--no-bundled", help="Mix in the request sets written for Charter (charter/guard/data)."
    ),
    refusals: bool = typer.Option(
        True, "--refusals/--no-refusals", help="Refusals paired with harmful requests as benign outputs."
    ),
    pairs: list[Path] = typer.Option(
        [], "--pairs", help="HH-RLHF-format chosen/rejected JSONL (pairwise output signal; repeatable)."
    ),
    max_answers: Optional[int] = typer.Option(
        None, "--max-answers", help="Answer at most this many requests (half harmful, half benign)."
    ),
    answer_rule: str = typer.Option(
        "form",
        "--answer-rule",
        help="form: an answer to a harmful request is harmful only when shaped like the task (steps, list, code), "
        "others go to unlabelled_answers.jsonl; any: every non-refusal is harmful.",
    ),
    translator: Optional[str] = typer.Option(
        None, "--translator", help="Model that translates requests (adds translated variants)."
    ),
    mix_harmful: list[Path] = typer.Option(
        [], "--mix-harmful", help="Prompt file(s) mixed in as harmful (e.g. AdvBench)."
    ),
    labelled_outputs: list[Path] = typer.Option(
        [],
        "--labelled-outputs",
        help="JSONL of replies labelled by hand: prompt, text, label harmful|benign (repeatable).",
    ),
    labelled_limit: Optional[int] = typer.Option(
        None,
        "--labelled-limit",
        help="Use at most this many hand-labelled replies (seeded sample; caps training time).",
    ),
    mix_benign: list[Path] = typer.Option(
        [], "--mix-benign", help="Prompt file(s) mixed in as benign (XSTest: label=safe rows)."
    ),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Validation share within each category."),
    dedupe_threshold: float = typer.Option(
        0.95, "--dedupe-threshold", help="Cosine similarity above which near-duplicates are dropped."
    ),
    seed: int = typer.Option(0, "--seed"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    batch_size: int = typer.Option(8, "--batch-size"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty output directory."),
) -> None:
    """Synthetic classifier data from the constitution's prohibited and allowed categories."""
    from charter.guard.synth import SynthConfig, Synthesizer

    cfg = SynthConfig(
        constitution=constitution,
        generator=generator,
        out=str(out),
        per_category=per_category,
        rounds=rounds,
        categories=tuple(category),
        outputs=outputs,
        augmentations=augmentations,
        translator=translator,
        augmentations_per_request=augmentations_per_request,
        bundled=bundled,
        refusals=refusals,
        pairs=tuple(str(p) for p in pairs),
        max_answers=max_answers,
        answer_rule=answer_rule,
        labelled_outputs=tuple(str(x) for x in labelled_outputs),
        labelled_limit=labelled_limit,
        mix_harmful=tuple(str(m) for m in mix_harmful),
        mix_benign=tuple(str(m) for m in mix_benign),
        val_fraction=val_fraction,
        dedupe_threshold=dedupe_threshold,
        seed=seed,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        overwrite=overwrite,
    )
    summary = run_with_progress(Synthesizer(cfg), "guard synth")
    pair_note = (
        f", {summary['pairs']['train']} + {summary['pairs']['val']} preference pairs"
        if summary["pairs"]["train"]
        else ""
    )
    console.print(
        f"{summary['train']} train / {summary['val']} validation records{pair_note}, {summary['duplicates_dropped']} "
        f"near-duplicates dropped -> {out}",
        highlight=False,
    )
    if summary["answers_left_unlabelled"]:
        console.print(
            f"{summary['answers_left_unlabelled']} answers to harmful requests left out "
            "(no rule labels them): label them in "
            f"{out / 'unlabelled_answers.jsonl'} and pass it with --labelled-outputs",
            highlight=False,
        )


@app.command("train")
@handle_errors
def train(
    data: Path = typer.Option(
        ..., "--data", "-d", help="Directory with train.jsonl and val.jsonl (text, label, side, category)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Guard directory (guard.json)."),
    target_fpr: float = typer.Option(
        0.01, "--target-fpr", help="Block threshold: this false-positive rate on benign validation texts."
    ),
    escalation_fpr: float = typer.Option(
        0.05, "--escalation-fpr", help="Escalation threshold: benign share sent to stage 2."
    ),
    stage1: str = typer.Option(
        "finetuned",
        "--stage1",
        help="finetuned (MiniLM trained end to end, served by ONNX Runtime) "
        "or frozen (logistic head on frozen MiniLM).",
    ),
    output_reads: str = typer.Option(
        "response",
        "--output-reads",
        help="Output-side stage 1 reads the reply alone (response) or request + reply (exchange).",
    ),
    epochs: int = typer.Option(3, "--epochs", help="Fine-tuning epochs."),
    lr: float = typer.Option(5e-5, "--lr", help="Fine-tuning learning rate."),
    batch_size: int = typer.Option(32, "--batch-size", help="Fine-tuning batch size."),
    max_length: int = typer.Option(
        128, "--max-length", help="Tokens read per text (request + reply pairs: twice this)."
    ),
    runtime: str = typer.Option(
        "onnx", "--runtime", help="How the fine-tuned encoder is served: onnx (fp32), onnx-int8 or torch."
    ),
    probe_model: Optional[str] = typer.Option(
        None, "--probe-model", help="Also fit a stage-1b probe on this local model's hidden states (the served model)."
    ),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing guard."),
) -> None:
    """Train the classifiers (stage 1 per side, the stage-2 exchange head) and calibrate their thresholds."""
    from charter.guard.training import GuardTrainConfig, GuardTrainer

    cfg = GuardTrainConfig(
        data=str(data),
        out=str(out),
        target_fpr=target_fpr,
        escalation_fpr=escalation_fpr,
        stage1=stage1,
        output_reads=output_reads,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        max_length=max_length,
        runtime=runtime,
        probe_model=probe_model,
        seed=seed,
        overwrite=overwrite,
    )
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
    console.print(f"guard: {out / 'guard.json'}", highlight=False)


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
