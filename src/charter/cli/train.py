"""``charter train sft`` and ``charter train dpo``."""

from __future__ import annotations

import typer

from charter.cli._common import console, handle_errors
from charter.cli._options import config_command
from charter.train.config import DPOTrainConfig, SFTTrainConfig, TrainConfig

app = typer.Typer(help="SFT and DPO training with principle routing and absorption profiles.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="train")


def _check_dtype(cfg: TrainConfig) -> None:
    if cfg.dtype not in ("float32", "bfloat16"):
        raise typer.BadParameter("must be float32 or bfloat16", param_hint="--dtype")


def _run(cfg: TrainConfig) -> None:
    from charter.train import TrainingRun

    summary = TrainingRun(cfg, echo=console.print).run()
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
@config_command(SFTTrainConfig)
def sft(cfg: SFTTrainConfig) -> None:
    """Supervised fine-tuning on SL-CAI revisions (TRL SFTTrainer; loss on the assistant turn). Resumable."""
    _check_dtype(cfg)
    _run(cfg)


@app.command("dpo")
@handle_errors
@config_command(DPOTrainConfig)
def dpo(cfg: DPOTrainConfig) -> None:
    """Direct preference optimisation on AI-feedback labels (TRL DPOTrainer, soft labels). Resumable."""
    if cfg.labels not in ("soft", "hard"):
        raise typer.BadParameter("must be soft or hard", param_hint="--labels")
    _check_dtype(cfg)
    _run(cfg)
