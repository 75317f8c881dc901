"""One training run (SFT or DPO) in an output directory that can be resumed.

OUT/ after a finished run: the model (a normal transformers directory, LoRA merged unless
``--no-merge-lora``, in which case a PEFT adapter directory), the tokenizer, ``train_config.json``
(the exact configuration, data hash, model and constitution identity), ``train_log.jsonl``,
``routing.json``, ``profiles.json`` + ``profiles.png`` and ``COMPLETE``. While it runs,
checkpoints sit in ``OUT/checkpoints/``; a rerun with the same arguments resumes from the last one.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from charter import __version__
from charter.backends.spec import ModelSpec, embedded_gguf_path, local_model_dir
from charter.constitution import constitution_digest, load_constitution
from charter.core.digests import file_sha256, weights_digest
from charter.core.errors import InputError
from charter.train.config import DPOTrainConfig, TrainConfig
from charter.train.data import TrainingData, load_preference_data, load_sft_data
from charter.train.profiles import write_profiles
from charter.train.routing import RoutingPlan, num_blocks

log = logging.getLogger(__name__)

CONFIG = "train_config.json"
LOG = "train_log.jsonl"
COMPLETE = "COMPLETE"
CHECKPOINTS = "checkpoints"
PROFILE_STATE = "charter_profiles.json"


def resolve_trainable_model(spec: str) -> tuple[Path, dict]:
    """A local transformers directory for a model spec, or a clear error for models we cannot train."""
    s = ModelSpec.parse(spec)
    if (
        s.kind == "hf"
        and (Path(s.target).expanduser() / "adapter_config.json").exists()
        and not (Path(s.target).expanduser() / "config.json").exists()
    ):
        raise InputError(
            "this is a LoRA adapter directory, not a full model; train on a merged model (--merge-lora)",
            source=str(Path(s.target).expanduser()),
        )
    p = local_model_dir(s)
    if s.kind in ("embedded", "gguf"):
        gguf = embedded_gguf_path() if s.kind == "embedded" else Path(s.target).expanduser()
        return p, {"spec": s.text, "gguf": str(gguf), "sha256": file_sha256(gguf)}
    if s.kind == "hf":
        # A content digest, so a different model at the same path (or the same one moved) is told apart.
        digest = weights_digest(p)
        return p, {"spec": s.text, "path": str(p.resolve())} | ({"sha256": digest["sha256"]} if digest else {})
    raise InputError(
        f"a {s.kind}: model cannot be trained (its weights are not reachable as a transformers model); "
        "use embedded, gguf:PATH or hf:PATH",
        source=spec,
    )


class TrainingRun:
    """Trains one model with TRL and writes OUT/ as described in the module docstring."""

    def __init__(self, config: TrainConfig, *, echo: Callable[[str], None] = lambda s: None, callbacks: list = ()):
        self.config = config
        self.out = Path(config.out)
        self.echo = echo
        self.callbacks = list(callbacks)  # extra transformers TrainerCallbacks

    # -- output directory --------------------------------------------------------------------------
    def _manifest(self, data_sha: str, constitution_digest: str, model_identity: dict) -> dict:
        return {
            "method": self.config.method,
            "arguments": self.config.identity(),
            "data_sha256": data_sha,
            "constitution_digest": constitution_digest,
            "base_model": model_identity,
            "charter_version": __version__,
        }

    def _prepare_out(self, manifest: dict) -> Path | None:
        """Returns the checkpoint to resume from, or None for a fresh run."""
        out, cfg = self.out, self.config
        if out.exists() and not out.is_dir():
            raise InputError("output path exists and is not a directory", source=str(out))
        if out.exists() and any(out.iterdir()):
            if cfg.overwrite:
                shutil.rmtree(out)
            elif (out / COMPLETE).exists():
                raise InputError(
                    "holds a finished training run; pass --overwrite to replace it or choose another --out",
                    source=str(out),
                )
            elif not (out / CONFIG).exists():
                raise InputError(
                    "exists and is not a Charter training directory; pass --overwrite or choose another --out",
                    source=str(out),
                )
            else:
                try:
                    old = json.loads((out / CONFIG).read_text())
                except ValueError:
                    raise InputError(f"{CONFIG} is unreadable; pass --overwrite", source=str(out)) from None
                diff = [k for k, v in manifest["arguments"].items() if old.get("arguments", {}).get(k) != v]
                diff += [k for k in ("data_sha256", "constitution_digest", "base_model") if old.get(k) != manifest[k]]
                if diff:
                    raise InputError(
                        f"holds an interrupted run with different {', '.join(diff)}; rerun with the same arguments "
                        "to resume, or pass --overwrite",
                        source=str(out),
                    )
                return _last_checkpoint(out / CHECKPOINTS)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / (CONFIG + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.replace(out / CONFIG)
        return None

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> dict:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cfg = self.config
        constitution = load_constitution(cfg.constitution)
        data_sha = file_sha256(cfg.data) if Path(cfg.data).is_file() else ""
        model_dir, model_identity = resolve_trainable_model(cfg.model)

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if not getattr(tokenizer, "chat_template", None):
            from charter.backends.hf import FALLBACK_CHAT_TEMPLATE

            tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
        try:
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        except (ValueError, OSError) as exc:
            raise InputError(
                f"cannot be trained as a causal language model: {str(exc).splitlines()[0]}", source=str(model_dir)
            ) from None

        plan = RoutingPlan.from_constitution(constitution, num_blocks(model), enabled=cfg.routing)
        data = self._load_data(plan)
        resume = self._prepare_out(self._manifest(data_sha, constitution_digest(constitution), model_identity))
        if resume:
            self.echo(f"resuming from {resume}")

        trainer = self._trainer(model, tokenizer, data, plan)
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # prints every log dict; the bar and train_log.jsonl carry them
        from charter.train.callbacks import JsonlLogCallback, ProfileStateCallback, TqdmProgressCallback

        trainer.add_callback(JsonlLogCallback(self.out / LOG, resume_step=_step_of(resume)))
        trainer.add_callback(ProfileStateCallback(trainer.profiler, PROFILE_STATE))
        trainer.add_callback(TqdmProgressCallback(f"{cfg.method.upper()} {'LoRA' if cfg.lora else 'full'}"))
        for cb in self.callbacks:
            trainer.add_callback(cb)
        if resume and (resume / PROFILE_STATE).exists():
            trainer.profiler.load_state_dict(json.loads((resume / PROFILE_STATE).read_text()))

        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        trainer.finish_routing()
        routing = plan.to_json(data.group_counts())
        return self._finish(trainer, tokenizer, routing, result, len(data.rows))

    def _load_data(self, plan: RoutingPlan) -> TrainingData:
        cfg = self.config
        if isinstance(cfg, DPOTrainConfig):
            return load_preference_data(cfg.data, plan, soft_labels=cfg.labels == "soft", limit=cfg.limit)
        return load_sft_data(cfg.data, plan, limit=cfg.limit)

    def _trainer(self, model, tokenizer, data: TrainingData, plan: RoutingPlan):
        from datasets import Dataset

        from charter.train.trainers import ConstitutionalSFTTrainer, SoftLabelDPOTrainer

        cfg = self.config
        peft_config = None
        if cfg.lora:
            from peft import LoraConfig

            peft_config = LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=0.0,
                task_type="CAUSAL_LM",
                target_modules=[t.strip() for t in cfg.lora_targets.split(",") if t.strip()],
            )
        common = dict(
            output_dir=str(self.out / CHECKPOINTS),
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=cfg.lr(),
            num_train_epochs=cfg.epochs,
            max_steps=cfg.max_steps,
            max_length=cfg.max_length,
            logging_steps=1,
            save_strategy="steps",
            save_steps=cfg.save_steps,
            save_total_limit=1,
            report_to=[],
            seed=cfg.seed,
            data_seed=cfg.seed,
            bf16=cfg.dtype == "bfloat16",
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,  # our own bar (callbacks.TqdmProgressCallback) without the log spam
            dataset_num_proc=None,
            activation_checkpointing=cfg.gradient_checkpointing,
        )
        dataset = Dataset.from_list(data.rows)
        try:
            if isinstance(cfg, DPOTrainConfig):
                from trl import DPOConfig

                args = DPOConfig(**common, beta=cfg.beta, precompute_ref_log_probs=cfg.precompute_ref)
                trainer = SoftLabelDPOTrainer(
                    model=model,
                    args=args,
                    train_dataset=dataset,
                    processing_class=tokenizer,
                    peft_config=peft_config,
                    soft_labels=cfg.labels == "soft",
                )
            else:
                from trl import SFTConfig

                args = SFTConfig(**common, packing=False)
                trainer = ConstitutionalSFTTrainer(
                    model=model,
                    args=args,
                    train_dataset=dataset,
                    processing_class=tokenizer,
                    peft_config=peft_config,
                )
        except ValueError as exc:
            if "Target modules" in str(exc) or "target_modules" in str(exc):
                raise InputError(
                    f"LoRA target modules not found in this model: {str(exc).splitlines()[0]}", source="--lora-targets"
                ) from None
            raise
        trainer.setup_routing(plan, cfg.seed)
        return trainer

    def _finish(self, trainer, tokenizer, routing: dict, result, n_examples: int) -> dict:
        cfg, out = self.config, self.out
        model = trainer.model
        trainer.profiler.remove()
        is_peft = hasattr(model, "peft_config")
        if is_peft and cfg.merge_lora:
            model = model.merge_and_unload()
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        (out / "routing.json").write_text(json.dumps(routing, indent=2) + "\n")
        report = trainer.profiler.report(routing if routing["enabled"] else None)
        report["routing_enabled"] = routing["enabled"]
        title = f"{cfg.method.upper()} absorption profiles ({'routed' if cfg.routing else 'unrouted'})"
        profiles_json, profiles_png = write_profiles(report, out, title)
        summary = {
            "method": cfg.method,
            "examples": n_examples,
            "steps": trainer.state.global_step,
            "train_loss": getattr(result, "training_loss", None),
            "train_runtime_s": (result.metrics or {}).get("train_runtime") if result else None,
            "model_dir": str(out),
            "adapter_only": bool(is_peft and not cfg.merge_lora),
            "routing": str(out / "routing.json"),
            "profiles": str(profiles_json),
            "profiles_png": str(profiles_png) if profiles_png else None,
            "train_log": str(out / LOG),
        }
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if not cfg.keep_checkpoints:
            shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
        (out / COMPLETE).write_text("ok\n")
        return summary


def _last_checkpoint(ckpt_dir: Path) -> Path | None:
    if not ckpt_dir.is_dir():
        return None
    done = [p for p in ckpt_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(done, key=_step_of) if done else None


def _step_of(checkpoint: Path | None) -> int:
    if checkpoint is None:
        return 0
    try:
        return int(checkpoint.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0
