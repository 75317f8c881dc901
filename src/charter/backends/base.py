"""The one small interface every model backend implements.

Chat messages in, text out, batched; and log-probability scoring of given continuations, which
preference labelling and classifiers read instead of parsing generated text.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Union

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}
Conversation = list[Message]


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample. ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" (end of turn) or "length" (hit max_new_tokens)


@dataclass(frozen=True)
class ScoreRequest:
    """Score each continuation after a context.

    A context given as messages is rendered with the model's chat template and an open assistant
    turn; a context given as a string is used verbatim (raw completion).
    """

    context: Union[Conversation, str]
    continuations: tuple[str, ...]

    def __init__(self, context: Union[Conversation, str], continuations: Sequence[str]):
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "continuations", tuple(continuations))


@dataclass
class BackendInfo:
    """Who generated a piece of data: recorded next to everything a backend produces."""

    spec: str
    backend: str
    model: str
    digest: str | None = None  # content digest of the weights file(s) where cheap to compute
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, {}, "")}


class Backend(abc.ABC):
    """A loaded model. Use as a context manager or call ``close()``."""

    info: BackendInfo

    @abc.abstractmethod
    def generate(
        self,
        conversations: Sequence[Conversation],
        config: SamplingConfig,
        seeds: Sequence[int] | None = None,
    ) -> list[Generation]:
        """One completion per conversation, in order.

        ``seeds`` gives one seed per conversation; backends that sample each sequence with its
        own generator (llama.cpp, remote servers) make each output depend on its own seed only,
        whatever the batch it ran in. ``config.seed`` is used where ``seeds`` is None.
        """

    @abc.abstractmethod
    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Total log-probability of each continuation given its context (natural log)."""

    # -- incremental API ---------------------------------------------------------------------------
    # A scheduler that runs many multi-stage chains (SL-CAI) submits each chain's next request as
    # soon as its previous one finishes, and calls step() until nothing is busy. Backends with
    # continuous batching (llama.cpp) start a submitted request at the next decode step; the
    # default here batches whatever has been submitted into one generate() call per step.

    def submit(self, key: Hashable, conversation: Conversation, config: SamplingConfig, seed: int) -> None:
        self.__dict__.setdefault("_submitted", []).append((key, conversation, config, seed))

    def step(self) -> list[tuple[Hashable, Generation]]:
        """Advance generation; return ``(key, generation)`` for every request that finished."""
        queue = self.__dict__.get("_submitted") or []
        self.__dict__["_submitted"] = []
        by_config: dict[SamplingConfig, list] = {}
        for entry in queue:
            by_config.setdefault(entry[2], []).append(entry)
        out = []
        for config, entries in by_config.items():
            gens = self.generate([e[1] for e in entries], config, [e[3] for e in entries])
            out += [(e[0], g) for e, g in zip(entries, gens)]
        return out

    def busy(self) -> bool:
        return bool(self.__dict__.get("_submitted"))

    #: True where step() advances generation by one decode step (requests join and leave
    #: between steps); False where step() runs everything submitted to completion.
    continuous_batching: bool = False

    @property
    def supports_exact_scoring(self) -> bool:
        """False where only the first token of a continuation can be scored (chat APIs)."""
        return True

    def close(self) -> None:  # pragma: no cover - default no-op
        pass

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def file_digest(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return "sha256:" + h.hexdigest()


def seeds_for(config: SamplingConfig, n: int, seeds: Sequence[int] | None) -> list[int]:
    if seeds is None:
        return [config.seed + i for i in range(n)]
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} conversations")
    return list(seeds)
