"""GGUF models through llama.cpp (llama-cpp-python), with parallel sequences.

llama-cpp-python's high-level ``Llama`` class decodes one sequence at a time; this backend drives
llama.cpp's batch API directly so that up to ``batch_size`` sequences share every decode call
(prefill of new prompts is mixed with decoding of running ones, continuous-batching style).
Sampling happens here in numpy with one generator per sequence, so outputs depend on each
sequence's own seed, not on what else was in the batch.
"""

from __future__ import annotations

import ctypes
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
from charter.backends.sampling import sample_token
from charter.core.errors import BackendError, ContextLengthError

_LOG_CALLBACK = None  # keep the ctypes callback alive for the process lifetime


def _silence_llama_logs(llama_cpp) -> None:
    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        _LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


@dataclass
class _Job:
    tokens: list[int]  # prompt (and, for scoring, the continuation)
    max_new: int = 0
    rng: np.random.Generator | None = None
    score_from: int | None = None  # scoring: first continuation position
    config: SamplingConfig | None = None
    key: object = None  # set for jobs submitted through the incremental API
    # state
    fed: int = 0
    out: list[int] = field(default_factory=list)
    logprob: float = 0.0
    finish: str = "length"


EXTRA_BUFTS_ENV = "CHARTER_LLAMACPP_EXTRA_BUFTS"


def extra_buffers_safe() -> bool:
    """Whether llama.cpp may keep weights in its extra CPU buffer types. One of them is AMX, chosen
    whenever the CPU reports AMX; under some hypervisors the flags say AMX while the tile
    instructions trap, and the process dies of SIGILL at the first forward pass (seen on this
    project's VMs: amx_tile listed, kernel permission granted, still trapping). Plain buffers run
    everywhere, so they are the default where AMX is reported; CHARTER_LLAMACPP_EXTRA_BUFTS=1 (or
    0) decides instead."""
    forced = os.environ.get(EXTRA_BUFTS_ENV)
    if forced in ("0", "1"):
        return forced == "1"
    try:
        return "amx_tile" not in Path("/proc/cpuinfo").read_text()
    except OSError:
        return True


class LlamaCppBackend(Backend):
    def __init__(
        self,
        path: str | os.PathLike,
        *,
        spec: str | None = None,
        n_ctx: int = 4096,
        batch_size: int = 8,
        n_threads: int | None = None,
    ):
        try:
            import llama_cpp
        except ImportError:
            raise BackendError(
                "llama-cpp-python is not installed (pip install 'charter[llamacpp]')", source=spec or "llamacpp"
            ) from None
        src = Path(path).expanduser()
        if not src.is_file():
            raise BackendError("no such GGUF file", source=str(src))
        self._L = L = llama_cpp
        _silence_llama_logs(L)
        L.llama_backend_init()
        self.n_parallel = max(1, int(batch_size))
        self.n_ctx_per_seq = int(n_ctx)
        threads = n_threads or max(1, os.cpu_count() or 1)
        mp = L.llama_model_default_params()
        mp.use_extra_bufts = mp.use_extra_bufts and extra_buffers_safe()
        self.model = L.llama_model_load_from_file(str(src).encode(), mp)
        if not self.model:
            raise BackendError("llama.cpp could not load this file as a model", source=str(src))
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        cp = self._context_params(threads)
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise BackendError("llama.cpp could not create a context", source=str(src))
        self.mem = L.llama_get_memory(self.ctx)
        self.n_batch = cp.n_batch
        self._init_scheduler()
        template = L.llama_model_chat_template(self.model, None)
        self._template = _compile_template(template.decode() if template else None)
        self._bos = self._piece(L.llama_vocab_bos(self.vocab), special=True)
        self._eos = self._piece(L.llama_vocab_eos(self.vocab), special=True)
        self.info = BackendInfo(
            spec=spec or f"llamacpp:{src}",
            backend="llamacpp",
            model=str(src),
            digest=file_digest(src),
            options={
                "n_ctx": self.n_ctx_per_seq,
                "batch_size": self.n_parallel,
                "n_threads": threads,
                "extra_buffers": bool(mp.use_extra_bufts),
            },
        )

    def _context_params(self, threads: int):
        """llama.cpp context parameters: ``n_parallel`` sequences of ``n_ctx_per_seq`` tokens each."""
        cp = self._L.llama_context_default_params()
        cp.n_ctx = self.n_ctx_per_seq * self.n_parallel
        cp.n_batch = 2048
        cp.n_ubatch = 512
        cp.n_seq_max = self.n_parallel
        cp.n_outputs_max = cp.n_batch
        cp.n_outputs_max_per_seq = cp.n_batch
        cp.kv_unified = True  # one shared KV pool: short and long sequences balance out
        cp.n_threads = cp.n_threads_batch = threads
        return cp

    def _init_scheduler(self) -> None:
        """The continuous-batching state: per-slot KV contents, queued/active/finished jobs, the batch."""
        self._kv_tokens: list[list[int]] = [[] for _ in range(self.n_parallel)]
        self._pending: deque[_Job] = deque()
        self._slots: dict[int, _Job] = {}
        self._free = list(range(self.n_parallel))[::-1]
        self._finished: list[_Job] = []
        self.cached_tokens = 0  # prompt tokens served from the KV cache instead of prefilled
        self._batch = self._L.llama_batch_init(self.n_batch, 0, 1)

    # -- tokens ----------------------------------------------------------------------------------
    def tokenize(self, text: str, special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (self._L.llama_token * cap)()
        n = self._L.llama_tokenize(self.vocab, data, len(data), buf, cap, False, special)
        if n < 0:
            buf = (self._L.llama_token * -n)()
            n = self._L.llama_tokenize(self.vocab, data, len(data), buf, -n, False, special)
        return list(buf[:n])

    def _piece(self, token: int, special: bool = False) -> str:
        return self._piece_bytes(token, special).decode("utf-8", errors="replace")

    def _piece_bytes(self, token: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._L.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._L.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self._piece_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    def render(self, conversation: Conversation) -> str:
        return self._template.render(
            messages=conversation, add_generation_prompt=True, bos_token=self._bos, eos_token=self._eos
        )

    # -- engine ----------------------------------------------------------------------------------
    def _check_fits(self, job: _Job) -> None:
        limit = self.n_ctx_per_seq - job.max_new
        if len(job.tokens) > limit:
            raise ContextLengthError(
                f"prompt of {len(job.tokens)} tokens does not fit n_ctx={self.n_ctx_per_seq} with "
                f"{job.max_new} new tokens (raise it: llamacpp:PATH?n_ctx=8192)",
                source=self.info.spec,
            )

    def _run(self, jobs: list[_Job]) -> None:
        """Run jobs to completion (jobs already queued by ``submit`` run alongside them)."""
        for j in jobs:  # all or nothing: no half-queued call
            self._check_fits(j)
        self._pending.extend(jobs)
        waiting = {id(j) for j in jobs}
        while waiting:
            for job in self._step():
                waiting.discard(id(job))
                if job.key is not None:
                    self._finished.append(job)

    def _step(self) -> list[_Job]:
        """One llama_decode over every active slot; returns the jobs that finished.

        Continuous batching: free slots take queued jobs at once, decoding sequences add one
        token each and prompt prefill fills the rest of the batch.
        """
        L = self._L
        slots, free = self._slots, self._free
        self._admit_pending(slots, free)
        if not slots:
            return []
        n, wanted = self._fill_batch(slots)
        self._batch.n_tokens = n
        rc = L.llama_decode(self.ctx, self._batch)
        if rc == 1 and self._evict_idle(slots):
            rc = L.llama_decode(self.ctx, self._batch)  # retry after freeing cached prefixes
        if rc != 0:
            self._reset()  # the batch's bookkeeping was advanced: start clean for the next call
            raise BackendError(f"llama_decode failed (code {rc}); try a larger n_ctx", source=self.info.spec)
        self._consume_logits(wanted, slots)
        done = [
            s
            for s, j in slots.items()
            if j.fed >= len(j.tokens) and (j.score_from is not None or len(j.out) >= j.max_new)
        ]
        finished = []
        for seq in done:
            finished.append(slots.pop(seq))
            free.append(seq)
        return finished

    def _admit_pending(self, slots: dict[int, _Job], free: list[int]) -> None:
        """Give free slots to queued jobs (in order)."""
        deferred = []
        while self._pending and free:
            job = self._pending.popleft()
            if self._prefix_in_flight(job, slots):
                deferred.append(job)  # wait one step and copy the prefix instead of recomputing it
                continue
            seq = self._assign(job, free, slots)
            free.remove(seq)
            slots[seq] = job
        self._pending.extendleft(reversed(deferred))

    def _fill_batch(self, slots: dict[int, _Job]) -> tuple[int, list[tuple[int, int, int]]]:
        """Add the active slots' tokens to the batch; returns how many and the positions whose
        logits are wanted as (batch position, seq, token position)."""
        n = 0
        wanted: list[tuple[int, int, int]] = []
        # Decoding sequences first (1 token each), then prompt chunks fill the rest.
        for seq, job in sorted(slots.items(), key=lambda kv: kv[1].fed < len(kv[1].tokens)):
            if job.fed < len(job.tokens):
                take = min(len(job.tokens) - job.fed, self.n_batch - n)
                if take <= 0:
                    continue
                for k in range(job.fed, job.fed + take):
                    last = k == len(job.tokens) - 1
                    need = (job.score_from is not None and k >= job.score_from - 1 and not last) or (
                        last and job.max_new > 0
                    )
                    self._add(n, job.tokens[k], k, seq, need)
                    self._kv_tokens[seq].append(job.tokens[k])
                    if need:
                        wanted.append((n, seq, k))
                    n += 1
                job.fed += take
            else:
                pos = len(job.tokens) + len(job.out) - 1
                self._add(n, job.out[-1], pos, seq, True)
                self._kv_tokens[seq].append(job.out[-1])
                wanted.append((n, seq, pos))
                n += 1
        return n, wanted

    def _consume_logits(self, wanted: list[tuple[int, int, int]], slots: dict[int, _Job]) -> None:
        """After a decode: add each scored token's log-probability, or sample each generating job's next token."""
        L = self._L
        for i, seq, pos in wanted:
            job = slots[seq]
            logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,))
            if job.score_from is not None:
                target = job.tokens[pos + 1]
                m = logits.max()
                job.logprob += float(logits[target] - m - np.log(np.exp(logits - m).sum()))
                continue
            token = self._sample(logits, job.config, job.rng)  # type: ignore[arg-type]
            if L.llama_vocab_is_eog(self.vocab, token):
                job.finish = "stop"
                job.max_new = len(job.out)  # done
            else:
                job.out.append(token)

    # -- incremental API (continuous batching across pipeline stages) ----------------------------
    continuous_batching = True

    def submit(self, key, conversation: Conversation, config: SamplingConfig, seed: int) -> None:
        job = _Job(
            self.tokenize(self.render(conversation)),
            config.max_new_tokens,
            np.random.default_rng(seed),
            config=config,
            key=key,
        )
        self._check_fits(job)
        self._pending.append(job)

    def step(self) -> list:
        finished = self._finished + [j for j in self._step() if j.key is not None]
        self._finished = []
        return [(j.key, self._generation(j)) for j in finished]

    def busy(self) -> bool:
        return bool(self._pending or self._slots or self._finished)

    def _generation(self, j: _Job) -> Generation:
        return Generation(self.detokenize(j.out).strip(), len(j.tokens), len(j.out), j.finish)

    def _prefix_in_flight(self, job: _Job, busy: dict[int, _Job], min_gain: int = 64) -> bool:
        """True when a running job is about to prefill a long prefix this job shares (a few-shot
        block, say) that no slot holds yet: better to wait a step and share it."""
        cap = self._reuse_cap(job)
        cached = max((_common_prefix(t, job.tokens, cap) for t in self._kv_tokens), default=0)
        for other in busy.values():
            shared = _common_prefix(other.tokens, job.tokens, cap)
            if shared > cached + min_gain and other.fed < shared:
                return True
        return False

    @staticmethod
    def _reuse_cap(job: _Job) -> int:
        # Tokens whose logits we need are always fed: the last prompt token, or for scoring the
        # whole continuation and the token before it.
        return len(job.tokens) - 1 if job.score_from is None else job.score_from - 1

    def _assign(self, job: _Job, free: list[int], busy: dict[int, _Job]) -> int:
        """Pick a free slot for a job, reusing cached KV of the longest matching token prefix.

        The revision turn extends the critique turn's context, and few-shot dialogues repeat
        across prompts: like llama.cpp server's prompt cache, only the new suffix is prefilled.
        A prefix held by another slot is shared through ``llama_memory_seq_cp`` (no copy in a
        unified KV cache).
        """
        L = self._L
        cap = self._reuse_cap(job)

        def common(seq: int) -> int:
            return _common_prefix(self._kv_tokens[seq], job.tokens, cap)

        # Best match first; among equal matches the slot with the least cached work to lose, so a
        # chain's context (wanted by its next turn) is not evicted by an unrelated prompt.
        own = max(free, key=lambda seq: (common(seq), -len(self._kv_tokens[seq])))
        own_len = common(own)
        donor = max((s for s in range(self.n_parallel) if s != own), key=common, default=None)
        if donor is not None and common(donor) > own_len + 16:
            keep = common(donor)
            L.llama_memory_seq_rm(self.mem, own, -1, -1)
            L.llama_memory_seq_cp(self.mem, donor, own, 0, keep)
            self._kv_tokens[own] = job.tokens[:keep]
        else:
            keep = own_len
            if not L.llama_memory_seq_rm(self.mem, own, keep, -1):
                L.llama_memory_seq_rm(self.mem, own, -1, -1)
                keep = 0
            del self._kv_tokens[own][keep:]
        job.fed = keep
        self.cached_tokens += keep
        return own

    def _reset(self) -> None:
        self._L.llama_memory_clear(self.mem, True)
        self._kv_tokens = [[] for _ in range(self.n_parallel)]
        self._pending.clear()
        self._slots.clear()
        self._free = list(range(self.n_parallel))[::-1]
        self._finished = []

    def _evict_idle(self, busy: dict[int, _Job]) -> bool:
        idle = [s for s in range(self.n_parallel) if s not in busy and self._kv_tokens[s]]
        for s in idle:
            self._L.llama_memory_seq_rm(self.mem, s, -1, -1)
            self._kv_tokens[s] = []
        return bool(idle)

    def _add(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self._batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = 1 if logits else 0

    @staticmethod
    def _sample(logits: np.ndarray, config: SamplingConfig, rng: np.random.Generator) -> int:
        return sample_token(logits, config, rng)

    # -- Backend API -----------------------------------------------------------------------------
    def generate(self, conversations, config: SamplingConfig, seeds=None) -> list[Generation]:
        seeds = seeds_for(config, len(conversations), seeds)
        jobs = [
            _Job(self.tokenize(self.render(c)), config.max_new_tokens, np.random.default_rng(s), config=config)
            for c, s in zip(conversations, seeds)
        ]
        self._run(jobs)
        return [self._generation(j) for j in jobs]

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        jobs, where = [], []
        for r_i, req in enumerate(requests):
            ctx = self.tokenize(req.context if isinstance(req.context, str) else self.render(req.context))
            if not ctx:
                bos = self._L.llama_vocab_bos(self.vocab)
                if bos < 0:
                    raise BackendError(
                        "cannot score after an empty context: the model has no BOS token", source=self.info.spec
                    )
                ctx = [bos]
            for c_i, cont in enumerate(req.continuations):
                cont_ids = self.tokenize(cont, special=False)
                jobs.append(_Job(ctx + cont_ids, 0, score_from=len(ctx)))
                where.append((r_i, c_i))
        self._run(jobs)
        out = [[0.0] * len(r.continuations) for r in requests]
        for (r_i, c_i), job in zip(where, jobs):
            out[r_i][c_i] = job.logprob
        return out

    def close(self) -> None:
        L = getattr(self, "_L", None)
        if L is None:
            return
        if getattr(self, "_batch", None) is not None:
            L.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "ctx", None):
            L.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            L.llama_model_free(self.model)
            self.model = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def _common_prefix(a: Sequence[int], b: Sequence[int], cap: int) -> int:
    n = min(len(a), len(b), cap)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _compile_template(source: str | None):
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from charter.backends.hf import FALLBACK_CHAT_TEMPLATE

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, loader=jinja2.BaseLoader())

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    return env.from_string(source or FALLBACK_CHAT_TEMPLATE)
