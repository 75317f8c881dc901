"""What ``charter train sft`` and ``charter train dpo`` are asked to do: one field per CLI flag,
each carrying its help. Light to import (no torch): the CLI builds its options from these."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from charter.backends.spec import TRAINABLE_MODEL_HELP
from charter.core.options import option


@dataclass(kw_only=True)
class TrainConfig:
    """Shared by ``charter train sft`` and ``charter train dpo``; fields mirror the CLI flags."""

    data: str = option(help="Training data (JSONL).", flags=("--data", "-d"), path=True)
    model: str = option("embedded", help=f"Model to train. {TRAINABLE_MODEL_HELP}", flags=("--model", "-m"))
    out: str = option(
        help="Output directory: the trained model, train_log.jsonl, routing.json, profiles.json/png.",
        flags=("--out", "-o"),
        path=True,
    )
    constitution: str = option(
        "default", help="Constitution whose principles' depths route the training.", flags=("--constitution", "-c")
    )
    lora: bool = option(True, help="LoRA through PEFT (default) or full fine-tuning.", flags=("--lora/--full",))
    lora_r: int = option(16, help="LoRA rank.")
    lora_alpha: int = option(32, help="LoRA alpha.")
    lora_targets: str = option("q_proj,k_proj,v_proj,o_proj", help="Comma-separated module names LoRA adapts.")
    merge_lora: bool = option(
        True,
        help="Merge LoRA into the weights (a plain model directory) or save the adapter.",
        flags=("--merge-lora/--no-merge-lora",),
    )
    routing: bool = option(
        True, help="Depth-selective gradient routing by each example's principles.", flags=("--routing/--no-routing",)
    )
    epochs: float = option(1.0, help="Passes over the data.")
    max_steps: int = option(-1, help="Stop after this many optimizer steps (overrides --epochs).")
    # None: a default that suits the method and LoRA vs full.
    learning_rate: float | None = option(
        None, help="Learning rate (default depends on method and LoRA/full).", flags=("--learning-rate", "--lr")
    )
    batch_size: int = option(4, help="Examples per batch (each batch holds one principle group).")
    grad_accum: int = option(1, help="Gradient accumulation steps.")
    max_length: int = option(512, help="Truncate tokenised examples to this many tokens.")
    dtype: Literal["float32", "bfloat16"] = option(
        "float32", help="float32 or bfloat16 (mixed precision through accelerate)."
    )
    seed: int = option(0, help="Seed for initialisation and batch order.")
    save_steps: int = option(25, help="Checkpoint every N steps (an interrupted run resumes from the last).")
    # Off: on CPU it costs ~30% time and small models fit anyway.
    gradient_checkpointing: bool = option(False, cli=False)
    limit: int | None = option(None, help="Use at most this many examples.")
    overwrite: bool = option(False, help="Replace an existing output directory.")
    keep_checkpoints: bool = option(False, help="Keep OUT/checkpoints after a finished run.")

    method = "train"
    # Flags that change how the run is stored, not what it learns: a resume may differ in them.
    _NOT_IDENTITY = ("out", "overwrite", "keep_checkpoints")

    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else (2e-4 if self.lora else 2e-5)

    def identity(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if k not in self._NOT_IDENTITY} | {"method": self.method}


@dataclass(kw_only=True)
class SFTTrainConfig(TrainConfig):
    data: str = option(
        help="SFT data: JSONL with 'messages' (e.g. cai critique-revise's sft.jsonl) or 'prompt' + 'completion'.",
        flags=("--data", "-d"),
        path=True,
    )
    method = "sft"


@dataclass(kw_only=True)
class DPOTrainConfig(TrainConfig):
    data: str = option(
        help="Preference data: JSONL with prompt, chosen, rejected, p_chosen (e.g. cai preferences' prefs.jsonl).",
        flags=("--data", "-d"),
        path=True,
    )
    beta: float = option(0.1, help="DPO beta (strength of the KL anchor to the reference model).")
    labels: Literal["soft", "hard"] = option(
        "soft", help="soft: per-example label smoothing eps = 1 - p_chosen; hard: standard DPO."
    )
    precompute_ref: bool = option(False, help="Compute reference log-probs once before training.")
    method = "dpo"

    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else (5e-5 if self.lora else 5e-6)
