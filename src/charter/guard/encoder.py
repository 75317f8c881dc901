"""The fine-tuned stage-1/stage-2 classifier: all-MiniLM-L6-v2 trained end to end with one logit
per task, run in PyTorch or (for serving) ONNX Runtime with int8 weights.

Three heads share one encoder, so one forward pass of one small model serves every check:

- ``input``    — a user request, read alone (stage 1, input side);
- ``output``   — an assistant reply, read alone (stage 1, output side; works on partial streams);
- ``exchange`` — the request and the reply read together as a text pair (stage 2, and the
  "input+output together" stage-1 variant). A request alone is an exchange with an empty reply.

Training is binary cross-entropy per head on its labelled texts plus, when preference pairs are
given (HH-RLHF harmless: the rejected reply is the more harmful one), a pairwise logistic loss that
asks the rejected reply to outscore the chosen one on the ``output`` and ``exchange`` heads.

Export: the encoder with mean pooling and the heads in one ONNX graph (logits out), served by ONNX
Runtime in fp32 (``onnx``, the default) or with dynamically quantised int8 weights
(``onnx-int8``). ``EncoderClassifier`` loads any of the three runtimes with the same tokenisation,
so their decisions can be compared (tests do). Why fp32 by default: dynamic int8 quantises
activations with one scale per batch, so a text's score moved by up to 0.09 with the other texts
batched beside it, and by up to 0.4 against fp32 (measured in bench/guard_overhead.py and the
tests); fp32 ONNX already meets the latency target.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

TASKS = ("input", "output", "exchange")
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
RUNTIMES = ("onnx", "onnx-int8", "torch")


@dataclass
class EncoderTrainConfig:
    """Fine-tuning settings (``charter guard train --epochs/--lr/--batch-size/--max-length``)."""

    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 128  # single texts (stage 1)
    pair_max_length: int = 256  # request + reply (exchange head)
    weight_decay: float = 0.01
    warmup: float = 0.1
    pair_weight: float = 0.5  # weight of the pairwise loss against the per-text loss
    seed: int = 0


@dataclass
class Example:
    task: str
    text: str
    pair: str | None = None  # the reply, for the exchange head (text is then the request)
    y: float = 0.0


@dataclass
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str


class MultiHeadEncoder(torch.nn.Module):
    """MiniLM + attention-masked mean pooling + one linear logit per task."""

    def __init__(self, path: str | Path):
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(path)
        self.heads = torch.nn.Linear(int(self.encoder.config.hidden_size), len(TASKS))

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.heads(pooled)


def _tokenize(
    tokenizer, texts: Sequence[str], pairs: Sequence[str | None] | None, max_length: int, pair_max_length: int
):
    if pairs is not None and any(p is not None for p in pairs):
        # longest_first: a long request gives up tokens before the reply does.
        return tokenizer(
            list(texts),
            [p or "" for p in pairs],
            padding=True,
            truncation="longest_first",
            max_length=pair_max_length,
            return_tensors="pt",
        )
    return tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")


class EncoderTrainer:
    """Fine-tunes a ``MultiHeadEncoder`` from the packaged MiniLM and saves it as a HF directory
    (encoder weights, tokenizer) plus ``heads.safetensors``."""

    def __init__(self, config: EncoderTrainConfig, base: str | Path | None = None):
        from charter.guard.embed import minilm_dir

        self.config = config
        self.base = Path(base) if base else minilm_dir()

    def train(
        self,
        examples: list[Example],
        pairs: list[PreferencePair] = (),
        out: str | Path | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> MultiHeadEncoder:
        from transformers import AutoTokenizer, get_linear_schedule_with_warmup

        c = self.config
        report = progress or (lambda d, t, s: None)
        torch.manual_seed(c.seed)
        rng = random.Random(c.seed)
        tokenizer = AutoTokenizer.from_pretrained(self.base)
        model = MultiHeadEncoder(self.base)
        model.train()
        # Balance the classes within each head: harmful and benign counts differ by task.
        weights = {}
        for task in TASKS:
            ys = [e.y for e in examples if e.task == task]
            pos = sum(ys)
            weights[task] = (
                len(ys) / (2 * pos) if pos else 1.0,
                len(ys) / (2 * (len(ys) - pos)) if len(ys) > pos else 1.0,
            )
        batches = self._batches(examples, pairs, rng)
        steps = len(batches) * c.epochs
        no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
        decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": c.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=c.lr
        )
        sched = get_linear_schedule_with_warmup(opt, int(c.warmup * steps), steps)
        task_index = {t: i for i, t in enumerate(TASKS)}
        done = 0
        report(0, steps, "fine-tuning")
        for epoch in range(c.epochs):
            if epoch:
                batches = self._batches(examples, pairs, rng)
            for kind, batch in batches:
                if kind == "examples":
                    enc = _tokenize(
                        tokenizer,
                        [e.text for e in batch],
                        [e.pair for e in batch] if batch[0].task == "exchange" else None,
                        c.max_length,
                        c.pair_max_length,
                    )
                    logits = model(
                        enc["input_ids"],
                        enc["attention_mask"],
                        enc.get("token_type_ids", torch.zeros_like(enc["input_ids"])),
                    )
                    col = torch.tensor([task_index[e.task] for e in batch])
                    z = logits.gather(1, col[:, None]).squeeze(1)
                    y = torch.tensor([e.y for e in batch], dtype=z.dtype)
                    w = torch.tensor(
                        [weights[e.task][0] if e.y > 0.5 else weights[e.task][1] for e in batch], dtype=z.dtype
                    )
                    loss = (w * torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")).mean()
                else:
                    loss = self._pair_loss(model, tokenizer, batch) * c.pair_weight
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                done += 1
                report(done, steps, f"fine-tuning (epoch {epoch + 1}/{c.epochs}, loss {loss.item():.3f})")
        model.eval()
        if out is not None:
            save_encoder(model, tokenizer, out)
        return model

    def _pair_loss(self, model, tokenizer, batch: list[PreferencePair]):
        c = self.config
        loss = 0.0
        for task, with_prompt in (("output", False), ("exchange", True)):
            texts = [p.chosen for p in batch] + [p.rejected for p in batch]
            if with_prompt:
                enc = _tokenize(tokenizer, [p.prompt for p in batch] * 2, texts, c.max_length, c.pair_max_length)
            else:
                enc = _tokenize(tokenizer, texts, None, c.max_length, c.pair_max_length)
            logits = model(
                enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids", torch.zeros_like(enc["input_ids"]))
            )
            z = logits[:, TASKS.index(task)]
            chosen, rejected = z[: len(batch)], z[len(batch) :]
            loss = loss + torch.nn.functional.softplus(chosen - rejected).mean()  # -log sigmoid(rejected - chosen)
        return loss / 2

    def _batches(
        self, examples: list[Example], pairs: Sequence[PreferencePair], rng: random.Random
    ) -> list[tuple[str, list]]:
        """Batches of one task each (exchange batches hold text pairs), texts of similar length
        together to cut padding; batch order shuffled."""
        bs = self.config.batch_size
        out: list[tuple[str, list]] = []
        for task in TASKS:
            rows = [e for e in examples if e.task == task]
            rng.shuffle(rows)
            # Sort within windows of 8 batches: less padding, still random across windows.
            for w in range(0, len(rows), bs * 8):
                window = sorted(rows[w : w + bs * 8], key=lambda e: len(e.text) + len(e.pair or ""))
                out += [("examples", window[i : i + bs]) for i in range(0, len(window), bs)]
        plist = list(pairs)
        rng.shuffle(plist)
        half = max(1, bs // 4)  # each pair is four forward texts (two heads x two replies)
        out += [("pairs", plist[i : i + half]) for i in range(0, len(plist), half)]
        rng.shuffle(out)
        return out


def save_encoder(model: MultiHeadEncoder, tokenizer, out: str | Path) -> Path:
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_file(
        {"weight": model.heads.weight.detach().contiguous(), "bias": model.heads.bias.detach().contiguous()},
        str(out / "heads.safetensors"),
    )
    return out


def load_encoder(path: str | Path) -> MultiHeadEncoder:
    from safetensors.torch import load_file

    model = MultiHeadEncoder(path)
    state = load_file(str(Path(path) / "heads.safetensors"))
    model.heads.load_state_dict(state)
    return model.eval()


def export_onnx(path: str | Path, *, quantize: bool = False) -> Path:
    """``model.onnx`` (fp32) and, with ``quantize``, ``model.int8.onnx`` (dynamic int8 weights)
    beside the saved encoder. Returns the file serving should use."""
    import warnings

    path = Path(path)
    model = load_encoder(path)
    ids = torch.ones((2, 8), dtype=torch.long)
    fp32 = path / ONNX_FILES["onnx"]
    with torch.inference_mode(), warnings.catch_warnings():
        # The TorchScript exporter is the one that takes dynamic axes for this graph; its tracer
        # warnings are about Python constants that are constant here (full-length masks, no cache).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(fp32),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")}
            | {"logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    if not quantize:
        return fp32
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = path / ONNX_FILES["onnx-int8"]
    logging.getLogger().setLevel(logging.ERROR)  # its "consider pre-processing" advice is logged at WARNING
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return int8


class EncoderClassifier:
    """Logits of the three heads for texts (and optional replies), from the ONNX graph in fp32
    (``runtime="onnx"``, the default for serving) or int8 (``"onnx-int8"``), or from the PyTorch
    weights (``"torch"``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        runtime: str = "onnx",
        max_length: int = 128,
        pair_max_length: int = 256,
        threads: int | None = None,
        batch_size: int = 32,
    ):
        from transformers import AutoTokenizer

        self.path = Path(path)
        self.runtime = runtime
        self.max_length, self.pair_max_length, self.batch_size = max_length, pair_max_length, batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self._lock = threading.Lock()
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown encoder runtime {runtime!r} (known: {', '.join(RUNTIMES)})")
        if runtime in ONNX_FILES:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.session = ort.InferenceSession(
                str(self.path / ONNX_FILES[runtime]), opts, providers=["CPUExecutionProvider"]
            )
            self.model = None
        else:
            self.session = None
            self.model = load_encoder(self.path)

    def logits(self, texts: Sequence[str], pairs: Sequence[str | None] | None = None) -> np.ndarray:
        """(n, 3) logits in TASKS order. Texts with a reply are read as a pair (exchange)."""
        n = len(texts)
        out = np.zeros((n, len(TASKS)), dtype=np.float32)
        if not n:
            return out
        order = sorted(range(n), key=lambda i: len(texts[i]) + len((pairs or [None] * n)[i] or ""))
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            sub_pairs = [pairs[i] for i in idx] if pairs is not None else None
            enc = _tokenize(self.tokenizer, [texts[i] for i in idx], sub_pairs, self.max_length, self.pair_max_length)
            tt = enc.get("token_type_ids", torch.zeros_like(enc["input_ids"]))
            if self.session is not None:
                feed = {
                    "input_ids": enc["input_ids"].numpy(),
                    "attention_mask": enc["attention_mask"].numpy(),
                    "token_type_ids": tt.numpy(),
                }
                out[idx] = self.session.run(["logits"], feed)[0]
            else:
                with torch.inference_mode():
                    out[idx] = self.model(enc["input_ids"], enc["attention_mask"], tt).numpy()
        return out


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling (a, b) so that sigmoid(a*z + b) is calibrated on these validation logits."""
    z = torch.tensor(np.asarray(logits, dtype=np.float64))
    t = torch.tensor(np.asarray(y, dtype=np.float64))
    a = torch.ones(1, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([a, b], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a * z + b, t) + 1e-4 * (a - 1) ** 2
        loss.backward()
        return loss

    opt.step(closure)
    av, bv = float(a.detach()), float(b.detach())
    if not (math.isfinite(av) and math.isfinite(bv)) or av <= 0:
        return 1.0, 0.0  # degenerate validation data: keep the raw sigmoid (monotone either way)
    return av, bv
