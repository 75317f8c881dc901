"""``charter align RECIPE``: constitution -> guard -> SL-CAI -> SFT -> preferences -> DPO ->
evaluation -> seal, stage by stage, in one output directory.

Each stage writes its own subdirectory (``guard/``, ``sl-cai/``, ``sft/``, ``prefs/``, ``dpo/``,
``eval/``, the seals inside ``sft/`` and ``dpo/``) with the records that stage always writes
(run.json, train_config.json, ...). ``align.json`` is the run's ledger: for every stage its
fingerprint (a digest of its settings and of the fingerprints of the stages it reads), status,
times and directory. A rerun skips every finished stage whose fingerprint still matches, resumes
an interrupted one (each stage is resumable on its own), and redoes a stage, and everything after
it, when its settings changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from charter import __version__
from charter.align.recipe import Recipe, load_recipe
from charter.core.clock import now as _now
from charter.core.digests import file_sha256
from charter.core.errors import InputError

LEDGER = "align.json"
Progress = Callable[[int, int, str], None]


@dataclass
class AlignConfig:
    """Arguments of ``charter align`` (one field per CLI flag)."""

    recipe: str
    out: str
    restart_from: str | None = None  # redo this stage and the ones after it


class AlignRun:
    def __init__(self, config: AlignConfig, *, recipe: Recipe | None = None, base: Path | None = None):
        self.config = config
        if recipe is None:
            recipe, base = load_recipe(config.recipe)
        self.recipe, self.base = recipe, Path(base or Path.cwd()).resolve()
        self.out = Path(config.out)
        if self.out.exists() and not self.out.is_dir():
            raise InputError("output path exists and is not a directory", source=str(self.out))
        self.stages = recipe.stages()
        if config.restart_from is not None and config.restart_from not in self.stages:
            raise InputError(
                f"no stage {config.restart_from!r} in this recipe (stages: {', '.join(self.stages)})",
                source="--restart-from",
            )
        if "seal" in self.stages and not (recipe.seal and recipe.seal.key):
            from charter.provenance.keys import PASSPHRASE_ENV

            if not os.environ.get(PASSPHRASE_ENV) and not (self.out / "keys" / "private_key.pem").is_file():
                raise InputError(
                    f"the seal stage generates a signing key: set {PASSPHRASE_ENV} (its passphrase)", source="[seal]"
                )
        self.ledger = self._read_ledger()

    # -- paths -------------------------------------------------------------------------------------
    def path(self, value: str | None) -> str | None:
        return None if value is None else str((self.base / value).resolve()) if not Path(value).is_absolute() else value

    def dir(self, stage: str) -> Path:
        return self.out / {"preferences": "prefs", "seal": "keys"}.get(stage, stage)

    @property
    def guard_dir(self) -> Path:
        g = self.recipe.guard
        return Path(self.path(g.path)) if g and g.path else self.out / "guard"  # type: ignore[arg-type]

    def feedback_spec(self, value: str) -> str:
        return f"guard:{self.guard_dir}" if value == "guard" else value

    # -- ledger ------------------------------------------------------------------------------------
    def _read_ledger(self) -> dict:
        f = self.out / LEDGER
        if not f.is_file():
            return {"stages": {}}
        try:
            data = json.loads(f.read_text())
            assert isinstance(data.get("stages"), dict)
            return data
        except (ValueError, AssertionError):
            raise InputError(f"{LEDGER} is unreadable; use a new --out", source=str(f)) from None

    def _write_ledger(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        doc = {
            "task": "align",
            "charter_version": __version__,
            "recipe": self.recipe.name,
            "recipe_settings": self.recipe.model_dump(mode="json", by_alias=True),
            "stages": self.ledger["stages"],
        }
        tmp = self.out / (LEDGER + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(self.out / LEDGER)

    def _settings(self, stage: str) -> dict:
        r = self.recipe
        section = r.section(stage)
        settings = section.model_dump(mode="json") if section is not None else {}
        # The contents of the files a stage reads, not only their names: an edited prompt file
        # (or a replaced guard) redoes the stage.
        inputs = {}
        for key in ("prompts", "helpful", "mix_harmful", "mix_benign", "path"):
            for value in settings.get(key) if isinstance(settings.get(key), list) else [settings.get(key)]:
                f = Path(self.path(value)) if value else None  # type: ignore[arg-type]
                if f is not None:
                    f = f / "guard.json" if f.is_dir() else f
                    inputs[value] = file_sha256(f) if f.is_file() else None
        return {
            "stage": stage,
            "constitution": r.constitution,
            "model": r.model,
            "seed": r.seed,
            "settings": settings,
            "inputs": inputs,
        }

    def fingerprints(self) -> dict[str, str]:
        """Each stage's digest chains the one before it: a change upstream redoes what follows."""
        out, prev = {}, ""
        for stage in self.stages:
            blob = json.dumps([prev, self._settings(stage)], sort_keys=True).encode()
            out[stage] = prev = "sha256:" + hashlib.sha256(blob).hexdigest()
        return out

    # -- the run -----------------------------------------------------------------------------------
    def run(self, progress: Progress | None = None) -> dict:
        report = progress or (lambda d, t, s: None)
        fps = self.fingerprints()
        restart = self.stages.index(self.config.restart_from) if self.config.restart_from else None
        ran, skipped = [], []
        for n, stage in enumerate(self.stages):
            entry = self.ledger["stages"].get(stage) or {}
            redo = restart is not None and n >= restart
            if entry.get("status") == "done" and entry.get("fingerprint") == fps[stage] and not redo:
                skipped.append(stage)
                report(n + 1, len(self.stages), f"{stage}: done earlier")
                continue
            # Settings changed (or a restart was asked for): start the stage's directory afresh.
            fresh = redo or (entry and entry.get("fingerprint") != fps[stage])
            if fresh and stage not in ("seal",) and self.dir(stage).exists():
                shutil.rmtree(self.dir(stage))
            self.ledger["stages"][stage] = {
                "status": "running",
                "fingerprint": fps[stage],
                "dir": str(self.dir(stage)),
                "started": _now(),
            }
            self._write_ledger()

            def inner(done: int, total: int, status: str, _n=n, _stage=stage) -> None:
                report(_n, len(self.stages), f"{_stage} {done}/{total} {status}".rstrip())

            inner(0, 0, "starting")
            result = getattr(self, "_" + stage.replace("-", "_"))(inner)
            self.ledger["stages"][stage].update({"status": "done", "finished": _now(), "result": result})
            self._write_ledger()
            ran.append(stage)
            report(n + 1, len(self.stages), f"{stage}: done")
        return {"out": str(self.out), "ran": ran, "skipped": skipped, "stages": self.ledger["stages"]}

    # -- stages ------------------------------------------------------------------------------------
    def _guard(self, progress: Progress) -> dict:
        from charter.guard.synth import SynthConfig, Synthesizer
        from charter.guard.training import GuardTrainConfig, GuardTrainer

        g, r = self.recipe.guard, self.recipe
        assert g is not None
        if g.path:
            return {"guard": str(self.guard_dir), "built": False}
        data = self.out / "guard-data"
        synth = Synthesizer(
            SynthConfig(
                constitution=r.constitution,
                generator=g.generator,
                out=str(data),
                per_category=g.per_category,
                max_new_tokens=g.max_new_tokens,
                max_answers=g.max_answers,
                labelled_limit=g.labelled_limit,
                seed=r.seed,
                overwrite=True,
                mix_harmful=tuple(self.path(p) for p in g.mix_harmful),  # type: ignore[misc]
                mix_benign=tuple(self.path(p) for p in g.mix_benign),  # type: ignore[misc]
            )
        )
        _run(synth, progress)
        trainer = GuardTrainer(
            GuardTrainConfig(
                data=str(data), out=str(self.guard_dir), stage1=g.stage1, epochs=g.epochs, seed=r.seed, overwrite=True
            )
        )
        metrics = _run(trainer, progress)
        return {"guard": str(self.guard_dir), "built": True, "validation": metrics}

    def _sl_cai(self, progress: Progress) -> dict:
        from charter.cai import CritiqueReviser, CritiqueRevisionConfig

        s, r = self.recipe.sl_cai, self.recipe
        cfg = CritiqueRevisionConfig(
            constitution=r.constitution,
            prompts=self.path(s.prompts),
            out=str(self.dir("sl-cai")),
            model=r.model,  # type: ignore[arg-type]
            critic=self.feedback_spec(s.critic),
            column=s.column,
            limit=s.limit,
            helpful=self.path(s.helpful),
            helpful_column=s.helpful_column,
            revisions=s.revisions,
            seed=r.seed,
            batch_size=s.batch_size,
            max_new_tokens=s.max_new_tokens,
            temperature=s.temperature,
            candidates=s.candidates,
            guard=str(self.guard_dir) if s.with_guard and s.critic != "guard" else None,
        )
        worker = CritiqueReviser(cfg)
        summary = _run(worker, progress)
        return {
            "records": summary["records"],
            "data": str(self.dir("sl-cai") / "sft.jsonl"),
            "feedback": worker.feedback,
        }

    def _train(self, method: str, progress: Progress) -> dict:
        from charter.train import DPOTrainConfig, SFTTrainConfig, TrainingRun
        from charter.train.run import COMPLETE

        r = self.recipe
        section = r.sft if method == "sft" else r.dpo
        assert section is not None
        out = self.dir(method)
        common = dict(
            out=str(out),
            constitution=r.constitution,
            epochs=section.epochs,
            batch_size=section.batch_size,
            max_length=section.max_length,
            learning_rate=section.learning_rate,
            lora=section.lora,
            routing=section.routing,
            seed=r.seed,
            # A run that finished but was not recorded (killed in between) is redone whole.
            overwrite=(out / COMPLETE).exists(),
        )
        if method == "sft":
            cfg = SFTTrainConfig(data=str(self.dir("sl-cai") / "sft.jsonl"), model=r.model, **common)
        else:
            cfg = DPOTrainConfig(
                data=str(self.dir("preferences") / "prefs.jsonl"),
                model=f"hf:{self.dir('sft')}",
                beta=r.dpo.beta,
                labels=r.dpo.labels,
                **common,
            )  # type: ignore[union-attr]
        summary = TrainingRun(cfg, callbacks=[_progress_callback(progress)]).run()
        return {k: summary.get(k) for k in ("method", "examples", "steps", "train_loss", "model_dir")}

    def _sft(self, progress: Progress) -> dict:
        return self._train("sft", progress)

    def _dpo(self, progress: Progress) -> dict:
        return self._train("dpo", progress)

    def _preferences(self, progress: Progress) -> dict:
        from charter.cai import PreferenceConfig, PreferenceLabeller

        p, r = self.recipe.preferences, self.recipe
        assert p is not None
        cfg = PreferenceConfig(
            constitution=r.constitution,
            prompts=self.path(p.prompts),
            out=str(self.dir("preferences")),  # type: ignore[arg-type]
            policy=f"hf:{self.dir('sft')}",
            judge=self.feedback_spec(p.judge),
            column=p.column,
            limit=p.limit,
            samples=p.samples,
            seed=r.seed + 1,
            batch_size=p.batch_size,
            max_new_tokens=p.max_new_tokens,
            guard=str(self.guard_dir) if p.with_guard and p.judge != "guard" else None,
            revisions=str(self.dir("sl-cai") / "chains.jsonl") if p.revision_pairs else None,
            revision_p=p.revision_p,
        )
        worker = PreferenceLabeller(cfg)
        summary = _run(worker, progress)
        return {
            "pairs": summary.get("pairs"),
            "data": str(self.dir("preferences") / "prefs.jsonl"),
            "feedback": worker.feedback,
        }

    def model_spec(self, name: str) -> str:
        return self.recipe.model if name == "base" else f"hf:{self.dir(name)}"

    def _eval(self, progress: Progress) -> dict:
        from charter.evals import EvalConfig, EvalRun
        from charter.evals.compare import compare

        e, r = self.recipe.eval, self.recipe
        assert e is not None
        dirs = []
        for name in e.models:
            if name != "base" and name not in self.stages:
                raise InputError(f"eval.models: {name!r} is not trained by this recipe", source="[eval]")
            for suite in e.suites:
                out = self.dir("eval") / f"{name}-{suite}"
                cfg = EvalConfig(
                    model=self.model_spec(name),
                    suite=suite,
                    out=str(out),
                    constitution=r.constitution,
                    judge=(e.judge or r.model) if suite == "harmlessness" else None,
                    skip=e.skip,
                    limit=e.limit,
                    max_new_tokens=e.max_new_tokens,
                    seed=r.seed,
                )
                _run(EvalRun(cfg), lambda d, t, s, _x=f"{name} {suite}": progress(d, t, f"{_x} {s}"))
                dirs.append(str(out))
        report = compare(dirs, self.dir("eval") / "report")
        return {
            "report": str(self.dir("eval") / "report" / "report.md"),
            "runs": dirs,
            "plots": {k: str(v) for k, v in report.get("plots", {}).items()},
        }

    def _seal(self, progress: Progress) -> dict:
        from charter.provenance import SealConfig, Sealer, generate_keypair
        from charter.provenance.keys import PASSPHRASE_ENV

        r = self.recipe
        passphrase = os.environ.get(PASSPHRASE_ENV, "").encode() or None
        key = Path(self.path(r.seal.key)) if r.seal and r.seal.key else self.out / "keys" / "private_key.pem"  # type: ignore[arg-type]
        if not key.is_file():
            generate_keypair(key.parent, passphrase or b"")
        guard = str(self.guard_dir) if r.guard is not None else None
        sealed = {}
        sft_data = str(self.dir("sl-cai") / "sft.jsonl")
        evals = [
            str(self.dir("eval") / f"{m}-{s}")
            for m in ("sft", "dpo")
            for s in (r.eval.suites if r.eval else [])
            if r.eval and m in r.eval.models
        ]
        progress(0, 2, "sft")
        Sealer(
            SealConfig(
                model_dir=str(self.dir("sft")),
                constitution=r.constitution,
                key=str(key),
                data=(sft_data,),
                evals=tuple(e for e in evals if "/sft-" in e),
                guard=guard if r.dpo is None else None,
                overwrite=True,
            ),
            passphrase=passphrase,
        ).seal()
        sealed["sft"] = str(self.dir("sft"))
        if r.dpo is not None:
            progress(1, 2, "dpo")
            Sealer(
                SealConfig(
                    model_dir=str(self.dir("dpo")),
                    constitution=r.constitution,
                    key=str(key),
                    parent=str(self.dir("sft")),
                    data=(str(self.dir("preferences") / "prefs.jsonl"),),
                    evals=tuple(e for e in evals if "/dpo-" in e),
                    guard=guard,
                    overwrite=True,
                ),
                passphrase=passphrase,
            ).seal()
            sealed["dpo"] = str(self.dir("dpo"))
        return {"sealed": sealed, "key": str(key), "public_key": str(key.parent / "public_key.pem")}

    def close(self) -> None:
        pass


def _run(worker, progress: Progress):
    """A stage's worker (``run(progress)`` / ``close()``), closed however it ends."""
    try:
        return worker.run(progress)
    finally:
        worker.close()


def _progress_callback(progress: Progress):
    from transformers import TrainerCallback

    class _Report(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            progress(state.global_step, state.max_steps, "steps")

    return _Report()


__all__ = ["AlignConfig", "AlignRun", "LEDGER"]
