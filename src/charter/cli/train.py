"""``charter train sft`` and ``charter train dpo``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors

app = typer.Typer(help="SFT and DPO training with principle routing and absorption profiles.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="train")


MODEL_HELP = "embedded | hf:PATH | gguf:PATH (a model whose weights can be loaded by transformers)"


def _common(
    data: Path,
    model: str,
    out: Path,
    constitution: str,
    lora: bool,
    lora_r: int,
    lora_alpha: int,
    lora_targets: str,
    merge_lora: bool,
    routing: bool,
    epochs: float,
    max_steps: int,
    learning_rate: Optional[float],
    batch_size: int,
    grad_accum: int,
    max_length: int,
    dtype: str,
    seed: int,
    save_steps: int,
    limit: Optional[int],
    overwrite: bool,
    keep_checkpoints: bool,
) -> dict:
    if dtype not in ("float32", "bfloat16"):
        raise typer.BadParameter("must be float32 or bfloat16", param_hint="--dtype")
    return dict(
        data=str(data),
        model=model,
        out=str(out),
        constitution=constitution,
        lora=lora,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_targets=lora_targets,
        merge_lora=merge_lora,
        routing=routing,
        epochs=epochs,
        max_steps=max_steps,
        learning_rate=learning_rate,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_length=max_length,
        dtype=dtype,
        seed=seed,
        save_steps=save_steps,
        limit=limit,
        overwrite=overwrite,
        keep_checkpoints=keep_checkpoints,
    )


# Typer has no option groups shared between commands, so the shared flags are spelled out once here.
_OPTS = dict(
    model=typer.Option("embedded", "--model", "-m", help=f"Model to train. {MODEL_HELP}"),
    out=typer.Option(
        ...,
        "--out",
        "-o",
        help="Output directory: the trained model, train_log.jsonl, routing.json, profiles.json/png.",
    ),
    constitution=typer.Option(
        "default", "--constitution", "-c", help="Constitution whose principles' depths route the training."
    ),
    lora=typer.Option(True, "--lora/--full", help="LoRA through PEFT (default) or full fine-tuning."),
    lora_r=typer.Option(16, "--lora-r", help="LoRA rank."),
    lora_alpha=typer.Option(32, "--lora-alpha", help="LoRA alpha."),
    lora_targets=typer.Option(
        "q_proj,k_proj,v_proj,o_proj", "--lora-targets", help="Comma-separated module names LoRA adapts."
    ),
    merge_lora=typer.Option(
        True,
        "--merge-lora/--no-merge-lora",
        help="Merge LoRA into the weights (a plain model directory) or save the adapter.",
    ),
    routing=typer.Option(
        True, "--routing/--no-routing", help="Depth-selective gradient routing by each example's principles."
    ),
    epochs=typer.Option(1.0, "--epochs", help="Passes over the data."),
    max_steps=typer.Option(-1, "--max-steps", help="Stop after this many optimizer steps (overrides --epochs)."),
    learning_rate=typer.Option(
        None, "--learning-rate", "--lr", help="Learning rate (default depends on method and LoRA/full)."
    ),
    batch_size=typer.Option(4, "--batch-size", help="Examples per batch (each batch holds one principle group)."),
    grad_accum=typer.Option(1, "--grad-accum", help="Gradient accumulation steps."),
    max_length=typer.Option(512, "--max-length", help="Truncate tokenised examples to this many tokens."),
    dtype=typer.Option("float32", "--dtype", help="float32 or bfloat16 (mixed precision through accelerate)."),
    seed=typer.Option(0, "--seed", help="Seed for initialisation and batch order."),
    save_steps=typer.Option(
        25, "--save-steps", help="Checkpoint every N steps (an interrupted run resumes from the last)."
    ),
    limit=typer.Option(None, "--limit", help="Use at most this many examples."),
    overwrite=typer.Option(False, "--overwrite", help="Replace an existing output directory."),
    keep_checkpoints=typer.Option(False, "--keep-checkpoints", help="Keep OUT/checkpoints after a finished run."),
)


def _report(summary: dict) -> None:
    console.print(
        f"{summary['method'].upper()}: {summary['examples']} examples, {summary['steps']} steps, "
        f"loss {summary['train_loss']:.4f} -> {summary['model_dir']}"
        if summary["train_loss"] is not None
        else f"{summary['method'].upper()}: {summary['steps']} steps -> {summary['model_dir']}",
        highlight=False,
    )
    console.print(
        f"routing: {summary['routing']}\nprofiles: {summary['profiles']}  heatmap: {summary['profiles_png']}",
        highlight=False,
    )


@app.command("sft")
@handle_errors
def sft(
    data: Path = typer.Option(
        ...,
        "--data",
        "-d",
        help="SFT data: JSONL with 'messages' (e.g. cai critique-revise's sft.jsonl) or 'prompt' + 'completion'.",
    ),
    model: str = _OPTS["model"],
    out: Path = _OPTS["out"],
    constitution: str = _OPTS["constitution"],
    lora: bool = _OPTS["lora"],
    lora_r: int = _OPTS["lora_r"],
    lora_alpha: int = _OPTS["lora_alpha"],
    lora_targets: str = _OPTS["lora_targets"],
    merge_lora: bool = _OPTS["merge_lora"],
    routing: bool = _OPTS["routing"],
    epochs: float = _OPTS["epochs"],
    max_steps: int = _OPTS["max_steps"],
    learning_rate: Optional[float] = _OPTS["learning_rate"],
    batch_size: int = _OPTS["batch_size"],
    grad_accum: int = _OPTS["grad_accum"],
    max_length: int = _OPTS["max_length"],
    dtype: str = _OPTS["dtype"],
    seed: int = _OPTS["seed"],
    save_steps: int = _OPTS["save_steps"],
    limit: Optional[int] = _OPTS["limit"],
    overwrite: bool = _OPTS["overwrite"],
    keep_checkpoints: bool = _OPTS["keep_checkpoints"],
) -> None:
    """Supervised fine-tuning on SL-CAI revisions (TRL SFTTrainer; loss on the assistant turn). Resumable."""
    from charter.train import SFTTrainConfig, TrainingRun

    config = SFTTrainConfig(
        **_common(
            data,
            model,
            out,
            constitution,
            lora,
            lora_r,
            lora_alpha,
            lora_targets,
            merge_lora,
            routing,
            epochs,
            max_steps,
            learning_rate,
            batch_size,
            grad_accum,
            max_length,
            dtype,
            seed,
            save_steps,
            limit,
            overwrite,
            keep_checkpoints,
        )
    )
    _report(TrainingRun(config, echo=console.print).run())


@app.command("dpo")
@handle_errors
def dpo(
    data: Path = typer.Option(
        ...,
        "--data",
        "-d",
        help="Preference data: JSONL with prompt, chosen, rejected, p_chosen (e.g. cai preferences' prefs.jsonl).",
    ),
    model: str = _OPTS["model"],
    out: Path = _OPTS["out"],
    constitution: str = _OPTS["constitution"],
    lora: bool = _OPTS["lora"],
    lora_r: int = _OPTS["lora_r"],
    lora_alpha: int = _OPTS["lora_alpha"],
    lora_targets: str = _OPTS["lora_targets"],
    merge_lora: bool = _OPTS["merge_lora"],
    routing: bool = _OPTS["routing"],
    epochs: float = _OPTS["epochs"],
    max_steps: int = _OPTS["max_steps"],
    learning_rate: Optional[float] = _OPTS["learning_rate"],
    batch_size: int = _OPTS["batch_size"],
    grad_accum: int = _OPTS["grad_accum"],
    max_length: int = _OPTS["max_length"],
    dtype: str = _OPTS["dtype"],
    seed: int = _OPTS["seed"],
    save_steps: int = _OPTS["save_steps"],
    limit: Optional[int] = _OPTS["limit"],
    overwrite: bool = _OPTS["overwrite"],
    keep_checkpoints: bool = _OPTS["keep_checkpoints"],
    beta: float = typer.Option(0.1, "--beta", help="DPO beta (strength of the KL anchor to the reference model)."),
    labels: str = typer.Option(
        "soft", "--labels", help="soft: per-example label smoothing eps = 1 - p_chosen; hard: standard DPO."
    ),
    precompute_ref: bool = typer.Option(
        False, "--precompute-ref", help="Compute reference log-probs once before training."
    ),
) -> None:
    """Direct preference optimisation on AI-feedback labels (TRL DPOTrainer, soft labels). Resumable."""
    from charter.train import DPOTrainConfig, TrainingRun

    if labels not in ("soft", "hard"):
        raise typer.BadParameter("must be soft or hard", param_hint="--labels")
    config = DPOTrainConfig(
        **_common(
            data,
            model,
            out,
            constitution,
            lora,
            lora_r,
            lora_alpha,
            lora_targets,
            merge_lora,
            routing,
            epochs,
            max_steps,
            learning_rate,
            batch_size,
            grad_accum,
            max_length,
            dtype,
            seed,
            save_steps,
            limit,
            overwrite,
            keep_checkpoints,
        ),
        beta=beta,
        labels=labels,
        precompute_ref=precompute_ref,
    )
    _report(TrainingRun(config, echo=console.print).run())
