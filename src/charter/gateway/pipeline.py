"""One chat exchange through the gateway, with no HTTP in it:

admit (kill switch, compliance: disclosure or hand-off) → screen the input (input guard) →
generate under the streaming output guard and the kill switch → finalize (receipt, audit entries
committed before the answer's last byte, metrics).

The router (``routers/chat.py``) parses the request into an ``Exchange``, calls these steps and
frames what they return: an ``Answer`` as a JSON body or two SSE chunks, a stream's ``Delta``s as
SSE chunks. A blocked request is answered with the constitution's refusal (finish_reason
``content_filter``), so clients keep working; ``Suspended`` and ``UpstreamFailed`` are the two
outcomes the router turns into HTTP errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
from starlette.concurrency import run_in_threadpool

from charter.gateway import schemas
from charter.gateway.compliance import Notice
from charter.gateway.state import GatewayState
from charter.gateway.upstream import GenParams, StreamResult, UpstreamError
from charter.provenance.receipts import sign_receipt

access = logging.getLogger("charter.gateway.access")
log = logging.getLogger("charter.gateway")


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


class ExchangePipeline:
    def __init__(self, state: GatewayState):
        self.state = state

    # -- admit ---------------------------------------------------------------------------------------
    async def admit(self, ex: Exchange) -> Answer | None:
        """Kill switch, then the compliance layer: None to go on, or the hand-off answer."""
        state = self.state
        suspension = state.killswitch.suspended(ex.model, ex.tenant)
        if suspension:
            await run_in_threadpool(
                state.log.append,
                "chat.suspended",
                ex.request_body() | {"reason": suspension.reason},
                tenant=ex.tenant,
                request_id=ex.rid,
            )
            self._finish(ex, "suspended", 503)
            raise Suspended(suspension.reason)
        if not state.compliance.active:
            return None
        c, t = state.compliance, time.perf_counter()
        # Thread hops only for work that blocks: the session row, the distress classifier.
        ex.notice = (
            await run_in_threadpool(c.on_request, ex.tenant, ex.session)
            if c.tracks_sessions
            else c.on_request(ex.tenant, ex.session)
        )
        ex.timed("compliance", t)
        if (
            ex.notice.handoff_reason is None
            and c.distress is not None
            and await run_in_threadpool(c.check_distress, ex.prompt)
        ):
            ex.notice.handoff_reason = "distress"
        if ex.notice.handoff_reason:
            return await self._handoff(ex)
        if state.upstream.local:
            ex.params.watermark = c.watermark_config()
        return None

    async def _handoff(self, ex: Exchange) -> Answer:
        """Dependency safeguard: answer with the hand-off message instead of the model, call the
        counsellor webhook once for this hand-off, and log both."""
        n, c = ex.notice, self.state.compliance
        payload = {
            "tenant": ex.tenant,
            "session": n.session,
            "request_id": ex.rid,
            "reason": n.handoff_reason,
            "continuous_minutes": round(n.continuous_minutes, 2),
        }
        if n.handoff_reason == "distress":
            await run_in_threadpool(c.mark_handoff, ex.tenant, n.session)
        hook = await run_in_threadpool(c.call_webhook, payload)
        answer = await self.canned(
            ex,
            c.profile.get("dependency.handoff_text"),
            "stop",
            "handoff",
            [("compliance.handoff", payload | hook)],
            {"handoff": n.handoff_reason},
        )
        answer.headers["X-Charter-Compliance"] = "handoff"
        return answer

    # -- screen the input ------------------------------------------------------------------------------
    async def screen_input(self, ex: Exchange) -> Answer | None:
        """The input guard: None to go on, or the refusal when it blocks."""
        state = self.state
        if not state.has_guard("input"):
            return None
        t = time.perf_counter()
        d = ex.input_decision = await run_in_threadpool(state.guard.check_input, ex.prompt)
        ex.timed("input-guard", t)
        self._count(ex, "input", d)
        if not d.block:
            return None
        return await self.canned(
            ex,
            state.refusal,
            "content_filter",
            "blocked-input",
            [_decision_entry("input", d)],
            {"category": d.category, "principle": d.principle},
        )

    # -- generate ----------------------------------------------------------------------------------------
    async def complete(self, ex: Exchange) -> Answer:
        state, result = self.state, StreamResult()
        t = time.perf_counter()
        gen = asyncio.ensure_future(state.upstream.complete(ex.messages, ex.params, result))
        suspension = await self._race_killswitch(ex, gen)
        ex.timed("upstream", t)
        if suspension is None:
            try:
                text = gen.result()
            except UpstreamError as exc:  # the detail goes to the log and the audit entry, never to the client
                log.warning("upstream error on %s: %s", ex.rid, exc)
                await run_in_threadpool(
                    state.log.append,
                    "chat.error",
                    ex.request_body() | {"error": str(exc)},
                    tenant=ex.tenant,
                    request_id=ex.rid,
                )
                self._finish(ex, "upstream_error", 502)
                raise UpstreamFailed(str(exc)) from None
        out_dec, finish, outcome = None, result.finish_reason, "allowed"
        if suspension is not None:
            content, finish, outcome = state.refusal, "content_filter", "suspended"
        else:
            content = text
            if state.has_guard("output"):
                t = time.perf_counter()
                out_dec = await run_in_threadpool(state.guard.check_output, text, ex.prompt)
                ex.timed("output-guard", t)
                self._count(ex, "output", out_dec)
                if out_dec.block:
                    content, finish, outcome = state.refusal, "content_filter", "blocked-output"
        dress = self.dressing(ex)
        content = dress.prefix + content + dress.suffix
        t = time.perf_counter()
        receipt = self._receipt(ex, content)
        ex.timed("receipt", t)
        entries = self.request_entries(ex) + ([_decision_entry("output", out_dec)] if out_dec else [])
        entries.append(
            (
                "chat.response",
                self._response_body(
                    ex, content, finish, outcome, result, receipt, suspension.reason if suspension else None
                ),
            )
        )
        await self.audit(ex, entries)
        self._finish(ex, outcome, 200, result.completion_tokens)
        return self._answer(
            ex,
            content,
            finish,
            outcome,
            dress,
            receipt,
            {},
            schemas.usage(result.prompt_tokens, result.completion_tokens),
            timing=True,
        )

    async def open_stream(self, ex: Exchange) -> Dressing:
        """Before the first byte of a stream: the request (and input decision) is audited."""
        await self.audit(ex, self.request_entries(ex))
        return self.dressing(ex)

    async def stream(self, ex: Exchange, dress: Dressing) -> AsyncIterator[Delta | Answer]:
        """Deltas, then the final ``Answer``. Text is released only after the output check that covers
        it; the kill switch is looked at between chunks and while waiting for one (``poll_seconds``
        apart). Closed early (the client went away), the response is still audited."""
        state, result = self.state, StreamResult()
        every, guarded = state.config.guard.stream_every, state.has_guard("output")
        agen = state.upstream.stream(ex.messages, ex.params, result).__aiter__()
        text, pending, n = "", "", 0
        finish, outcome, out_dec, reason, sent, receipt = None, "allowed", None, None, "", None
        nxt = None
        try:
            yield Delta(dress.prefix)
            sent = dress.prefix
            while finish is None:
                nxt = asyncio.ensure_future(agen.__anext__())
                s = await self._race_killswitch(ex, nxt, check_first=True)
                if s:
                    finish, outcome, reason = "content_filter", "suspended", s.reason
                    break
                try:
                    chunk = nxt.result()
                except StopAsyncIteration:
                    break
                text, pending, n = text + chunk, pending + chunk, n + 1
                if guarded and n % every == 0:
                    out_dec = await self._check_output(ex, text)
                    if out_dec.block:
                        finish, outcome = "content_filter", "blocked-output"
                        break
                if not guarded or n % every == 0:
                    sent += pending
                    yield Delta(pending)
                    pending = ""
            if finish is None and guarded:
                out_dec = await self._check_output(ex, text)
                if out_dec.block:
                    finish, outcome = "content_filter", "blocked-output"
            if finish is None:
                finish = result.finish_reason
                if pending or dress.suffix:
                    sent += pending + dress.suffix
                    yield Delta(pending + dress.suffix)
            else:
                tail = ("\n\n" if sent != dress.prefix else "") + state.refusal + dress.suffix
                sent += tail
                yield Delta(tail)
        except UpstreamError as exc:  # the detail goes to the log, not into the stream
            log.warning("upstream error on %s: %s", ex.rid, exc)
            finish, outcome, reason = "error", "upstream-error", str(exc)  # audited; the client gets a generic reason
        finally:
            # Shielded: when the client disconnects, the server cancels the response, and anyio's
            # cancellation would otherwise abort every await here, losing the response entry.
            with anyio.CancelScope(shield=True):
                if finish is None:  # the client went away mid-stream
                    finish, outcome = "aborted", "client-disconnected"
                receipt = await self._close_stream(ex, agen, nxt, sent, finish, outcome, out_dec, result, reason)
        if outcome == "upstream-error":
            reason = "the upstream model failed mid-stream (the detail is logged)"
        yield self._answer(
            ex,
            sent,
            finish,
            outcome,
            dress,
            receipt,
            {},
            schemas.usage(result.prompt_tokens, result.completion_tokens),
            tail={"reason": reason} if reason else {},
        )

    async def _close_stream(
        self,
        ex: Exchange,
        agen,
        nxt,
        sent: str,
        finish: str,
        outcome: str,
        out_dec,
        result: StreamResult,
        reason: str | None,
    ) -> dict | None:
        """Stop the upstream stream, then receipt, audit and count what was sent; the receipt."""
        if nxt is not None and not nxt.done():  # a pending read holds the generator: stop it first
            nxt.cancel()
            await asyncio.gather(nxt, return_exceptions=True)
        await agen.aclose()
        receipt = self._receipt(ex, sent)
        entries = ([_decision_entry("output", out_dec)] if out_dec else []) + [
            ("chat.response", self._response_body(ex, sent, finish, outcome, result, receipt, reason))
        ]
        await self.audit(ex, entries)
        self._finish(ex, outcome, 200, result.completion_tokens)
        return receipt

    async def _check_output(self, ex: Exchange, text: str):
        d = await run_in_threadpool(self.state.guard.check_output, text, ex.prompt)
        self._count(ex, "output", d)
        return d

    async def _race_killswitch(self, ex: Exchange, task: asyncio.Future, *, check_first: bool = False):
        """Wait for ``task``; if the kill switch trips first, cancel it and return the suspension.
        With ``check_first`` (streaming) the switch is looked at even when the task is already done,
        so a suspension stops a stream between chunks, not only while waiting for one."""
        poll = self.state.config.server.poll_seconds
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll)
            if done and not check_first:
                return None
            s = self.state.killswitch.suspended(ex.model, ex.tenant)
            if s:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return s
            if done:
                return None

    # -- answers the gateway writes itself ----------------------------------------------------------------
    async def canned(
        self, ex: Exchange, text: str, finish: str, outcome: str, entries_before: list, info: dict
    ) -> Answer:
        """A refusal or hand-off: dressed, receipted and audited like a model's answer."""
        dress = self.dressing(ex)
        content = dress.prefix + text + dress.suffix
        receipt = self._receipt(ex, content)
        entries = self.request_entries(ex, entries_before) + [
            ("chat.response", self._response_body(ex, content, finish, outcome, StreamResult(), receipt, None))
        ]
        await self.audit(ex, entries)
        self._finish(ex, outcome, 200)
        return self._answer(ex, content, finish, outcome, dress, receipt, info, schemas.usage(0, 0))

    def dressing(self, ex: Exchange) -> Dressing:
        c = self.state.compliance
        if not c.active:
            return Dressing()
        d, n = Dressing(), ex.notice
        if n is not None and n.disclosure:
            d.prefix = n.disclosure + "\n\n"
            d.fields["disclosure"] = {"text": n.disclosure, "reason": n.disclosure_reason}
            d.headers["X-Charter-Disclosure"] = n.disclosure_reason
        lp, d.suffix = c.label_parts()
        d.prefix += lp
        meta = c.label_metadata(ex.model, "charter", ex.params.watermark is not None)
        if meta:
            d.fields["label"] = meta
        if c.profile.get("label.header"):
            d.headers["X-Charter-AI-Generated"] = "true"
        return d

    def _answer(
        self,
        ex: Exchange,
        content: str,
        finish: str,
        outcome: str,
        dress: Dressing,
        receipt: dict | None,
        info: dict,
        usage: dict,
        *,
        timing: bool = False,
        tail: dict | None = None,
    ) -> Answer:
        # Key order as clients have always seen it: guard, request_id, info, dressing, receipt, tail.
        fields = (
            {"guard": outcome, "request_id": ex.rid}
            | info
            | dress.fields
            | ({"receipt": receipt} if receipt else {})
            | (tail or {})
        )
        headers = (
            dress.headers | {"X-Charter-Guard": outcome} | ({"X-Charter-Receipt": _b64(receipt)} if receipt else {})
        )
        if timing:
            headers["Server-Timing"] = ex.server_timing()
        return Answer(content, finish, outcome, fields, headers, usage)

    # -- finalize ------------------------------------------------------------------------------------------
    def request_entries(self, ex: Exchange, decisions: list[tuple[str, dict]] | None = None) -> list[tuple[str, dict]]:
        """The entries every answer's audit record starts with: the request, its disclosure, decisions
        (by default the input guard's)."""
        if decisions is None:
            decisions = [_decision_entry("input", ex.input_decision)] if ex.input_decision is not None else []
        n = ex.notice
        disclosure = (
            [
                (
                    "compliance.disclosure",
                    {
                        "session": n.session,
                        "reason": n.disclosure_reason,
                        "text": n.disclosure,
                        "continuous_minutes": round(n.continuous_minutes, 2),
                    },
                )
            ]
            if n is not None and n.disclosure
            else []
        )
        return [("chat.request", ex.request_body())] + disclosure + decisions

    async def audit(self, ex: Exchange, entries: list[tuple[str, dict]]) -> None:
        state, t = self.state, time.perf_counter()
        await asyncio.wrap_future(state.writer.submit([(k, b, ex.tenant, ex.rid) for k, b in entries]))
        state.metrics.audit_entries.inc(len(entries))
        ex.timed("audit", t)
        for kind, _ in entries:
            if kind.endswith(".blocked"):
                await run_in_threadpool(state.tripwire.observe, kind, ex.model, ex.tenant)

    def _response_body(self, ex: Exchange, content, finish, outcome, result: StreamResult, receipt, reason) -> dict:
        return {
            "content": content,
            "finish_reason": finish,
            "guard": outcome,
            "reason": reason,
            "usage": schemas.usage(result.prompt_tokens, result.completion_tokens),
            "latency_ms": round((time.perf_counter() - ex.t0) * 1000, 3),
            "receipt_signature": receipt["signatures"][0]["sig"] if receipt else None,
        }

    def _receipt(self, ex: Exchange, content: str) -> dict | None:
        state = self.state
        if not state.config.server.receipts:
            return None
        return sign_receipt(
            state.runtime_key,
            statement_digest=state.attestation.receipt_digest,
            request_id=ex.rid,
            prompt=ex.prompt,
            output=content,
        )

    def _count(self, ex: Exchange, side: str, d) -> None:
        m = self.state.metrics
        m.decisions.labels(side, d.stage, str(bool(d.block)).lower()).inc()
        m.guard_latency.labels(side).observe(sum(d.latency_ms.values()) / 1000)

    def _finish(self, ex: Exchange, outcome: str, status: int, tokens: int = 0) -> None:
        state, elapsed = self.state, time.perf_counter() - ex.t0
        state.metrics.requests.labels(outcome).inc()
        state.metrics.latency.observe(elapsed)
        state.metrics.tokens.inc(tokens)
        if state.config.server.log_requests:
            access.info(
                json.dumps(
                    {
                        "event": "chat",
                        "request_id": ex.rid,
                        "tenant": ex.tenant,
                        "model": ex.model,
                        "outcome": outcome,
                        "status": status,
                        "latency_ms": round(elapsed * 1000, 2),
                        "completion_tokens": tokens,
                    }
                )
            )


def _decision_entry(side: str, decision) -> tuple[str, dict]:
    return (f"guard.{side}.{'blocked' if decision.block else 'allowed'}", decision.to_dict())


def _b64(obj: dict) -> str:
    import base64

    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()
