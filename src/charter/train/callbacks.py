"""Trainer callbacks: the JSONL training log, profile state in checkpoints, a quiet progress bar."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback

from charter.core.io import append_jsonl, read_jsonl, repair_jsonl, write_jsonl_atomic


class JsonlLogCallback(TrainerCallback):
    """Appends every logged step to train_log.jsonl. On resume, drops lines past the checkpoint so
    the log matches the weights."""

    def __init__(self, path: Path, resume_step: int = 0):
        self.path = Path(path)
        if self.path.exists():
            repair_jsonl(self.path)
            kept = [r for r in read_jsonl(self.path) if r.get("step", 0) <= resume_step] if resume_step else []
            write_jsonl_atomic(self.path, kept)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            append_jsonl(self.path, [{"step": state.global_step, "epoch": state.epoch, **logs}])


class ProfileStateCallback(TrainerCallback):
    """Saves the absorption accumulators into each checkpoint, so a resumed run's profile is whole."""

    def __init__(self, profiler, filename: str):
        self.profiler = profiler
        self.filename = filename

    def on_save(self, args, state, control, **kwargs):
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            tmp = ckpt / (self.filename + ".tmp")
            tmp.write_text(json.dumps(self.profiler.state_dict()))
            os.replace(tmp, ckpt / self.filename)


class TqdmProgressCallback(TrainerCallback):
    """One bar with rate and ETA; the latest loss in its postfix instead of a printed dict per step."""

    def __init__(self, desc: str):
        self.desc = desc
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step", dynamic_ncols=True
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
