"""Local transformers models: a model directory (``hf:PATH``) or a GGUF file (``gguf:PATH``).

GGUF files are dequantised once and cached as safetensors, because parsing GGUF metadata in
Python costs ~20 s per load while the safetensors copy loads in ~2 s with identical logits.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from charter.backends.base import (
    Backend,
    BackendInfo,
    Conversation,
    Generation,
    SamplingConfig,
    ScoreRequest,
    file_digest,
    seeds_for,
)
from charter.core.errors import BackendError, ContextLengthError

log = logging.getLogger(__name__)

# Used only when a tokenizer ships without a chat template (small test models, base models).
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def cache_root() -> Path:
    return Path(os.environ.get("CHARTER_CACHE", Path.home() / ".cache" / "charter"))


def dequantised_gguf_dir(gguf_path: Path) -> Path:
    """Directory holding the safetensors copy of a GGUF file, creating it on first use."""
    digest = file_digest(gguf_path).split(":")[1]
    target = cache_root() / "gguf" / f"{gguf_path.stem}-{digest[:16]}"
    if (target / "COMPLETE").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # One process converts; others wait on the lock and then find the finished cache.
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "COMPLETE").exists():
            return target
        _dequantise_into(gguf_path, target, digest)
    return target


def _dequantise_into(gguf_path: Path, target: Path, digest: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantising %s once into %s", gguf_path, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # The weights are plain fp32 after loading; the flag only blocks save_pretrained().
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"{gguf_path}\nsha256:{digest}\n")
        (tmp / "COMPLETE").write_text("ok\n")
        if target.exists():  # a crashed earlier attempt (no COMPLETE)
            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic: a reader never sees half a cache
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_seal(src: Path, public_key: str | os.PathLike) -> str:
    """Sealed loading: the directory's seal must verify with this key before any weight is read."""
    from charter.core.errors import VerificationError
    from charter.provenance import verify_model

    try:
        return verify_model(src, public_key).statement_digest
    except VerificationError as exc:
        raise VerificationError(f"refusing to load {src}: {exc}") from None


def _load_adapter(src: Path, dtype: torch.dtype):
    """A PEFT LoRA directory (``charter train --no-merge-lora``): base model + adapter, merged for
    inference. The base is the local path recorded in adapter_config.json; nothing is downloaded.
    Under ``require_seal`` the seal's check (``_check_seal``) has already compared that base with the
    digest the adapter's seal records (and verified the base's own seal when it has one)."""
    import json

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = json.loads((src / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
    if not (Path(base) / "config.json").exists():
        raise BackendError(f"the adapter's base model {base!r} is not a local model directory", source=str(src))
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    return PeftModel.from_pretrained(model, src).merge_and_unload()


class _SeededSampler:
    """Per-sequence seeded sampling inside ``generate``: Gumbel-max over temperature-scaled,
    top-p-filtered logits. Each row draws from its own generator, so a sequence's output depends
    on its own seed and not on which batch it ran in."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float() / self.temperature
        if self.top_p < 1.0:
            sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
            cum = sorted_scores.softmax(-1).cumsum(-1)
            drop = cum - sorted_scores.softmax(-1) > self.top_p  # keep the token that crosses top_p
            scores = scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
        noise = torch.stack([torch.rand(scores.shape[-1], generator=g) for g in self.generators]).clamp_(1e-20, 1.0)
        return scores - torch.log(-torch.log(noise)).to(scores.device)


class HFBackend(Backend):
    def __init__(
        self,
        path: str | os.PathLike,
        *,
        spec: str | None = None,
        gguf: bool = False,
        dtype: str = "float32",
        device: str = "auto",
        batch_size: int = 8,
        require_seal: str | os.PathLike | None = None,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        src = Path(path).expanduser()
        if not src.exists():
            raise BackendError(f"no such model {'file' if gguf else 'directory'}", source=str(src))
        seal = None
        if require_seal is not None:
            seal = _check_seal(src, require_seal)
        digest = None
        if gguf:
            if not src.is_file():
                raise BackendError("a gguf: model must be a .gguf file", source=str(src))
            digest = file_digest(src)
            model_dir = dequantised_gguf_dir(src)
        else:
            adapter = (src / "adapter_config.json").exists() and not (src / "config.json").exists()
            if not adapter and not (src / "config.json").exists():
                raise BackendError("not a transformers model directory (no config.json)", source=str(src))
            model_dir = src
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            torch_dtype = getattr(torch, dtype)
        except AttributeError:
            raise BackendError(f"unknown dtype {dtype!r}", source=spec) from None
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not getattr(self.tokenizer, "chat_template", None):
            self.tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
        if not gguf and adapter:
            self.model = _load_adapter(src, torch_dtype).to(self.device)
        else:
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype).to(self.device)
        self.model.eval()
        self.batch_size = max(1, int(batch_size))
        self.info = BackendInfo(
            spec=spec or f"{'gguf' if gguf else 'hf'}:{src}",
            backend="gguf" if gguf else "hf",
            model=str(src),
            digest=digest,
            options={"dtype": dtype, "device": device, "batch_size": self.batch_size}
            | ({"seal_statement_sha256": seal} if seal else {}),
        )
        self._eos_ids = self._stop_token_ids()

    # -- helpers ---------------------------------------------------------------------------------
    def _stop_token_ids(self) -> list[int]:
        ids = set()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for x in (gen_eos, self.tokenizer.eos_token_id):
            if isinstance(x, int):
                ids.add(x)
            elif isinstance(x, (list, tuple)):
                ids.update(x)
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id:
            ids.add(im_end)
        return sorted(ids)

    def render(self, conversation: Conversation) -> str:
        return self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # -- generation ------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, conversations, config: SamplingConfig, seeds=None, watermark=None) -> list[Generation]:
        from transformers import GenerationConfig, LogitsProcessorList

        seeds = seeds_for(config, len(conversations), seeds)
        prompts = [self._encode(self.render(c)) for c in conversations]
        limit = getattr(self.model.config, "max_position_embeddings", None)
        for p in prompts:
            if limit and len(p) + config.max_new_tokens > limit:
                raise ContextLengthError(
                    f"prompt of {len(p)} tokens plus {config.max_new_tokens} new tokens exceeds the "
                    f"model's {limit} positions",
                    source=self.info.spec,
                )
        # Longest first, so each micro-batch holds similar lengths and pads little.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        results: list[Generation | None] = [None] * len(prompts)
        gen_config = GenerationConfig(
            max_new_tokens=config.max_new_tokens,
            do_sample=False,  # sampling is done by _SeededSampler (per-sequence seeds)
            eos_token_id=self._eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            watermarking_config=watermark,
        )
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = self.tokenizer.pad({"input_ids": [prompts[i] for i in idx]}, padding=True, return_tensors="pt").to(
                self.device
            )
            processors = LogitsProcessorList()
            if not config.greedy:
                processors.append(_SeededSampler([seeds[i] for i in idx], config.temperature, config.top_p))
            out = self.model.generate(**batch, generation_config=gen_config, logits_processor=processors)
            new = out[:, batch["input_ids"].shape[1] :]
            for row, i in enumerate(idx):
                tokens = new[row].tolist()
                n = len(tokens)
                finish = "length"
                for k, t in enumerate(tokens):
                    if t in self._eos_ids:
                        n, finish = k, "stop"
                        break
                text = self.tokenizer.decode(tokens[:n], skip_special_tokens=True)
                results[i] = Generation(text.strip(), len(prompts[i]), n, finish)
        return results  # type: ignore[return-value]

    def stream(self, conversation, config: SamplingConfig, seed: int = 0, stop=None, watermark=None):
        """Yield the answer's text as it is generated (one conversation). Setting the
        ``threading.Event`` ``stop`` ends generation at the next token; closing the iterator does
        the same. Returns the token counts as the generator's return value."""
        import threading

        from transformers import TextIteratorStreamer

        stop = stop or threading.Event()
        prompt = self._encode(self.render(conversation))
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit and len(prompt) + config.max_new_tokens > limit:
            raise ContextLengthError(
                f"prompt of {len(prompt)} tokens plus {config.max_new_tokens} new tokens exceeds "
                f"the model's {limit} positions",
                source=self.info.spec,
            )
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        ids = torch.tensor([prompt], device=self.device)
        kwargs = self._stream_generate_kwargs(ids, config, seed, stop, watermark, streamer)
        result = {}

        def run():
            try:
                with torch.inference_mode():
                    out = self.model.generate(**kwargs)
                result["completion_tokens"] = int(out.shape[1] - ids.shape[1])
            except BaseException as exc:  # surfaced to the consumer below
                result["error"] = exc
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            for text in streamer:
                if text:
                    yield text
        finally:
            stop.set()
            thread.join()
        if "error" in result:
            raise result["error"]
        return {"prompt_tokens": len(prompt), "completion_tokens": result.get("completion_tokens", 0)}

    def _stream_generate_kwargs(self, ids, config: SamplingConfig, seed: int, stop, watermark, streamer) -> dict:
        """``model.generate``'s arguments for ``stream``: one conversation, feeding ``streamer``,
        stopped once the ``threading.Event`` ``stop`` is set."""
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

        processors = LogitsProcessorList()
        if not config.greedy:
            processors.append(_SeededSampler([seed], config.temperature, config.top_p))
        gen_config = GenerationConfig(
            max_new_tokens=config.max_new_tokens,
            do_sample=False,
            eos_token_id=self._eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            watermarking_config=watermark,
        )  # a transformers watermarking config
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "generation_config": gen_config,
            "logits_processor": processors,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Stop()]),
        }

    # -- scoring ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        out = [[0.0] * len(r.continuations) for r in requests]
        # Requests whose continuations are all one token (judges' "A"/"B") need one forward pass
        # of the context, read at its last position; others score each continuation in full.
        single: list[tuple[int, list[int], list[int]]] = []  # (request, context ids, one token per continuation)
        multi: list[tuple[int, int, list[int], int]] = []  # (request, continuation, ids, n_ctx)
        for r_i, req in enumerate(requests):
            ctx_text = req.context if isinstance(req.context, str) else self.render(req.context)
            ctx = self._encode(ctx_text)
            if not ctx:
                if self.tokenizer.bos_token_id is None:
                    raise BackendError(
                        "cannot score after an empty context: the tokenizer has no BOS token", source=self.info.spec
                    )
                ctx = [self.tokenizer.bos_token_id]
            conts = [self._encode(c) for c in req.continuations]
            if conts and all(len(c) == 1 for c in conts):
                single.append((r_i, ctx, [c[0] for c in conts]))
            else:
                multi.extend((r_i, c_i, ctx + c, len(ctx)) for c_i, c in enumerate(conts))

        single.sort(key=lambda x: len(x[1]))  # similar lengths share a batch: less padding
        prefix = self._shared_prefix([ids for _, ids, _ in single])
        for start in range(0, len(single), self.batch_size):
            chunk = single[start : start + self.batch_size]
            logp = torch.log_softmax(self._last_logits([ids for _, ids, _ in chunk], prefix).float(), dim=-1)
            for k, (r_i, _, tokens) in enumerate(chunk):
                for c_i, tok in enumerate(tokens):
                    out[r_i][c_i] = float(logp[k, tok])

        multi.sort(key=lambda x: len(x[2]))
        for start in range(0, len(multi), self.batch_size):
            chunk = multi[start : start + self.batch_size]
            keep = max(len(ids) - n_ctx for _, _, ids, n_ctx in chunk) + 1
            logp = torch.log_softmax(self._forward([ids for _, _, ids, _ in chunk], keep=keep).float(), dim=-1)
            for k, (r_i, c_i, ids, n_ctx) in enumerate(chunk):
                n_cont = len(ids) - n_ctx
                # Left padding aligns every row's end: the last n_cont + 1 kept positions
                # (but the final one) predict the continuation tokens.
                preds = logp[k, keep - n_cont - 1 : keep - 1]
                targets = torch.tensor(ids[n_ctx:], device=logp.device)
                out[r_i][c_i] = float(preds.gather(-1, targets[:, None]).sum())
        return out

    MIN_SHARED_PREFIX = 16  # tokens; below this a shared prefix is not worth a separate pass

    @functools.cached_property
    def _cache_kwarg(self) -> str:
        # transformers renamed ``past_key_values`` to ``cache`` (5.2x); accept either.
        import inspect

        return "cache" if "cache" in inspect.signature(self.model.model.forward).parameters else "past_key_values"

    def _shared_prefix(self, seqs: list[list[int]]):
        """(length, KV cache) of the prefix every context shares (a judge's instructions and
        principles), computed once per ``score`` call; None when short or unsupported."""
        if len(seqs) < 2 or not hasattr(self.model, "model") or self.model.get_output_embeddings() is None:
            return None
        n = min(len(s) for s in seqs) - 1  # every row keeps at least one token of its own
        first = seqs[0]
        for s in seqs[1:]:
            k = 0
            while k < n and s[k] == first[k]:
                k += 1
            n = k
        if n < self.MIN_SHARED_PREFIX:
            return None
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([first[:n]], device=self.device), use_cache=True)
        cache = getattr(out, "cache", None)
        return n, cache if cache is not None else out.past_key_values

    def _last_logits(self, seqs: list[list[int]], prefix) -> torch.Tensor:
        """Next-token logits after each sequence, (batch, vocab)."""
        if prefix is None:
            return self._forward(seqs, keep=1)[:, -1]
        import copy

        n, cache = prefix
        cache = copy.deepcopy(cache)
        cache.batch_repeat_interleave(len(seqs))
        suffixes = [s[n:] for s in seqs]
        width = max(len(x) for x in suffixes)
        # Right padding after the shared prefix: real tokens keep their positions n, n+1, ...
        input_ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), n + width), dtype=torch.long)
        mask[:, :n] = 1
        for k, x in enumerate(suffixes):
            input_ids[k, : len(x)] = torch.tensor(x)
            mask[k, n : n + len(x)] = 1
        position_ids = torch.arange(n, n + width).expand(len(seqs), -1)
        with torch.inference_mode():
            hidden = self.model.model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=position_ids.to(self.device),
                use_cache=True,
                **{self._cache_kwarg: cache},
            ).last_hidden_state
            last = hidden[torch.arange(len(seqs)), torch.tensor([len(x) - 1 for x in suffixes])]
            return self.model.get_output_embeddings()(last)

    def _forward(self, seqs: list[list[int]], keep: int) -> torch.Tensor:
        """Logits of the last ``keep`` positions of left-padded sequences (only those positions go
        through the LM head, so a judge's 49k-way softmax is taken once per row, not per token)."""
        width = max(len(ids) for ids in seqs)
        input_ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for k, ids in enumerate(seqs):
            input_ids[k, width - len(ids) :] = torch.tensor(ids)
            mask[k, width - len(ids) :] = 1
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            return self.model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=position_ids.to(self.device),
                logits_to_keep=keep,
            ).logits

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
