"""A trained guard: stage-1 classifiers, a trained stage-2 exchange classifier, calibrated
thresholds, and the cascade.

Stage 1 comes in two kinds (``--stage1``):

- ``finetuned`` (default): all-MiniLM-L6-v2 fine-tuned end to end with one head per check
  (encoder.py), served by ONNX Runtime (fp32; int8 and PyTorch selectable). Its ``exchange`` head
  reads request and reply together and is the trained stage 2; ``--output-reads exchange`` also
  makes it stage 1 of the output side.
- ``frozen``: a logistic head on frozen MiniLM sentence embeddings (the first release's stage 1).

Training lives in ``charter.guard.training``; this module is the format and the runtime.

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
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from charter.core.errors import InputError
from charter.guard.augment import deobfuscate
from charter.guard.classifier import LogisticHead

FORMAT = "charter-guard/2"
FORMATS = ("charter-guard/1", FORMAT)  # /1: frozen-embedding heads only, still served
ENCODER_DIR = "encoder"
STAGE1_KINDS = ("finetuned", "frozen")
GUARD_FILE = "guard.json"
SIDES = ("input", "output")
LABELS = {"harmful": 1, "benign": 0, 1: 1, 0: 0}  # True/False hash as 1/0


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


TASK_INDEX = {"input": 0, "output": 1, "exchange": 2}


def side_logits(clf, side: str, texts: list[str], prompts: list[str | None]) -> np.ndarray:
    """(n, 3) logits: the single-text heads from the text alone, the exchange head from the pair."""
    single = clf.logits(texts)
    if side == "input":
        paired = clf.logits(texts, [""] * len(texts))
    else:
        paired = clf.logits([p or "" for p in prompts], texts)
    single[:, TASK_INDEX["exchange"]] = paired[:, TASK_INDEX["exchange"]]
    return single


def probe_backend(spec: str):
    from charter.backends import load_backend
    from charter.backends.hf import HFBackend

    backend = load_backend(spec)
    if not isinstance(backend, HFBackend):
        raise InputError("the probe needs a local transformers model (hf:, gguf: or embedded:hf)", source=spec)
    return backend


def default_embedder():
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
            self._embedder = default_embedder()  # loaded now: naming a blocked text must not pay a model load
        # Stage 1b replaces 1a for a side when the guard has a probe and the serving model is given.
        self.probes = {}
        if probe_backend is not None:
            from charter.guard.probe import HiddenStates, Probe

            features = HiddenStates(probe_backend)
            self.probes = {side: Probe(s["probe"], features) for side, s in spec["sides"].items() if "probe" in s}

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = default_embedder()
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
