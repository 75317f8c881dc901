"""What moves through the gateway's exchange pipeline (``pipeline.py``): the request as an
``Exchange``, the compliance ``Dressing`` of its answer, the finished ``Answer``, a stream's
``Delta``s and how far it has got (``StreamRun``), and the two outcomes the router turns into
HTTP errors (``Suspended``, ``UpstreamFailed``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from charter.gateway.compliance import Notice
from charter.gateway.upstream import GenParams, StreamResult


class Suspended(Exception):
    """The kill switch is on for this model or tenant (audited before it is raised)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UpstreamFailed(Exception):
    """The upstream model failed before answering (the detail is logged and audited, not shown)."""


@dataclass
class Exchange:
    """One request as it moves through the gateway."""

    rid: str
    tenant: str
    model: str
    messages: list[dict]
    prompt: str  # the last user message: what the input guard and receipts are about
    params: GenParams
    t0: float
    timings: dict = field(default_factory=dict)  # stage -> ms, sent as a Server-Timing header
    notice: Notice | None = None  # the compliance layer's disclosure / hand-off for this request
    session: str | None = None  # the end user's session id (X-Charter-Session or `user`)
    input_decision: object | None = None  # the input guard's decision, when it ran

    def timed(self, stage: str, since: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + (time.perf_counter() - since) * 1000

    def server_timing(self) -> str:
        parts = [f"{k};dur={v:.3f}" for k, v in self.timings.items()]
        return ", ".join(parts + [f"gateway;dur={(time.perf_counter() - self.t0) * 1000:.3f}"])

    def request_body(self) -> dict:
        return {
            "model": self.model,
            "messages": self.messages,
            "session": self.session,
            "params": {
                "max_tokens": self.params.max_tokens,
                "temperature": self.params.temperature,
                "top_p": self.params.top_p,
                "seed": self.params.seed,
                "stop": self.params.stop,
            },
        }


@dataclass
class Dressing:
    """What the compliance profile adds to an answer: text before and after it (disclosure,
    visible label), body fields and headers."""

    prefix: str = ""
    suffix: str = ""
    fields: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)


@dataclass
class Answer:
    """A finished answer: what the client is shown, and the body fields and headers that go with it."""

    content: str
    finish: str
    outcome: str  # allowed | blocked-input | blocked-output | suspended | handoff | upstream-error | ...
    fields: dict  # charter fields of the response body (guard, request_id, receipt, labels, ...)
    headers: dict
    usage: dict


@dataclass
class Delta:
    """A piece of streamed text, released only after the output check that covers it."""

    text: str


@dataclass
class StreamRun:
    """Where one streamed answer has got to: the upstream stream and its pending read, the text
    read, held back (not yet covered by an output check) and sent, and how it ended."""

    agen: AsyncIterator[str]
    result: StreamResult
    every: int  # the output guard checks the text so far every ``every`` chunks
    guarded: bool  # whether an output guard checks at all
    nxt: asyncio.Future | None = None
    text: str = ""
    pending: str = ""
    sent: str = ""
    n: int = 0  # chunks read
    finish: str | None = None
    outcome: str = "allowed"
    out_dec: object | None = None
    reason: str | None = None

    def stop(self, finish: str, outcome: str, reason: str | None = None) -> None:
        self.finish, self.outcome = finish, outcome
        if reason is not None:
            self.reason = reason

    def release(self) -> str:
        """The held-back text, now covered by a check (or unguarded): counted as sent."""
        piece, self.pending = self.pending, ""
        self.sent += piece
        return piece
