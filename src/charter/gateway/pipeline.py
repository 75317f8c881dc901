"""One chat exchange through the gateway, with no HTTP in it:

admit (kill switch, compliance: disclosure or hand-off) → screen the input (input guard) →
generate under the streaming output guard and the kill switch → finalize (receipt, audit entries
committed before the answer's last byte, metrics).

The router (``routers/chat.py``) parses the request into an ``Exchange`` (``exchange.py`` holds
what moves through the pipeline), calls these steps and frames what they return: an ``Answer``
as a JSON body or two SSE chunks, a stream's ``Delta``s as SSE chunks. A blocked request is
answered with the constitution's refusal (finish_reason ``content_filter``), so clients keep
working; ``Suspended`` and ``UpstreamFailed`` are the two outcomes the router turns into HTTP
errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import anyio
from starlette.concurrency import run_in_threadpool

from charter.gateway import schemas
from charter.gateway.exchange import Answer, Delta, Dressing, Exchange, StreamRun, Suspended, UpstreamFailed
from charter.gateway.state import GatewayState
from charter.gateway.upstream import StreamResult, UpstreamError
from charter.provenance.receipts import sign_receipt

access = logging.getLogger("charter.gateway.access")
log = logging.getLogger("charter.gateway")


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
        text, suspension = await self._generate(ex, result)
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

    async def _generate(self, ex: Exchange, result: StreamResult):
        """The upstream's whole answer, raced against the kill switch: ``(text, None)``, or
        ``(None, suspension)`` when the switch tripped first; ``UpstreamFailed`` (audited) on an
        upstream error."""
        state, t = self.state, time.perf_counter()
        gen = asyncio.ensure_future(state.upstream.complete(ex.messages, ex.params, result))
        suspension = await self._race_killswitch(ex, gen)
        ex.timed("upstream", t)
        if suspension is not None:
            return None, suspension
        try:
            return gen.result(), None
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

    async def open_stream(self, ex: Exchange) -> Dressing:
        """Before the first byte of a stream: the request (and input decision) is audited."""
        await self.audit(ex, self.request_entries(ex))
        return self.dressing(ex)

    async def stream(self, ex: Exchange, dress: Dressing) -> AsyncIterator[Delta | Answer]:
        """Deltas, then the final ``Answer``. Text is released only after the output check that covers
        it; the kill switch is looked at between chunks and while waiting for one (``poll_seconds``
        apart). Closed early (the client went away), the response is still audited."""
        state, result = self.state, StreamResult()
        agen = state.upstream.stream(ex.messages, ex.params, result).__aiter__()
        run = StreamRun(agen, result, state.config.guard.stream_every, state.has_guard("output"))
        try:
            yield Delta(dress.prefix)
            run.sent = dress.prefix
            while await self._read_chunk(ex, run):
                if not run.guarded or run.n % run.every == 0:
                    yield Delta(run.release())
            tail = await self._stream_tail(ex, run, dress)
            if tail is not None:
                yield Delta(tail)
        except UpstreamError as exc:  # the detail goes to the log, not into the stream
            log.warning("upstream error on %s: %s", ex.rid, exc)
            run.stop("error", "upstream-error", str(exc))  # audited; the client gets a generic reason
        finally:
            # Shielded: when the client disconnects, the server cancels the response, and anyio's
            # cancellation would otherwise abort every await here, losing the response entry.
            with anyio.CancelScope(shield=True):
                if run.finish is None:  # the client went away mid-stream
                    run.finish, run.outcome = "aborted", "client-disconnected"
                receipt = await self._close_stream(ex, run)
        if run.outcome == "upstream-error":
            run.reason = "the upstream model failed mid-stream (the detail is logged)"
        yield self._answer(
            ex,
            run.sent,
            run.finish,
            run.outcome,
            dress,
            receipt,
            {},
            schemas.usage(result.prompt_tokens, result.completion_tokens),
            tail={"reason": run.reason} if run.reason else {},
        )

    async def _read_chunk(self, ex: Exchange, run: StreamRun) -> bool:
        """Read the next upstream chunk, racing the kill switch, and check the text so far every
        ``stream_every`` chunks. False once the upstream is done or the stream was stopped."""
        run.nxt = asyncio.ensure_future(run.agen.__anext__())
        s = await self._race_killswitch(ex, run.nxt, check_first=True)
        if s:
            run.stop("content_filter", "suspended", s.reason)
            return False
        try:
            chunk = run.nxt.result()
        except StopAsyncIteration:
            return False
        run.text, run.pending, run.n = run.text + chunk, run.pending + chunk, run.n + 1
        if run.guarded and run.n % run.every == 0:
            run.out_dec = await self._check_output(ex, run.text)
            if run.out_dec.block:
                run.stop("content_filter", "blocked-output")
                return False
        return True

    async def _stream_tail(self, ex: Exchange, run: StreamRun, dress: Dressing) -> str | None:
        """After the last chunk: the final output check, then the text still to send (held back text
        and the suffix, or the refusal after a stop), None when there is none."""
        if run.finish is None and run.guarded:
            run.out_dec = await self._check_output(ex, run.text)
            if run.out_dec.block:
                run.stop("content_filter", "blocked-output")
        if run.finish is None:
            run.finish = run.result.finish_reason
            if not (run.pending or dress.suffix):
                return None
            tail = run.pending + dress.suffix
        else:
            tail = ("\n\n" if run.sent != dress.prefix else "") + self.state.refusal + dress.suffix
        run.sent += tail
        return tail

    async def _close_stream(self, ex: Exchange, run: StreamRun) -> dict | None:
        """Stop the upstream stream, then receipt, audit and count what was sent; the receipt."""
        nxt = run.nxt
        if nxt is not None and not nxt.done():  # a pending read holds the generator: stop it first
            nxt.cancel()
            await asyncio.gather(nxt, return_exceptions=True)
        await run.agen.aclose()
        receipt = self._receipt(ex, run.sent)
        entries = ([_decision_entry("output", run.out_dec)] if run.out_dec else []) + [
            (
                "chat.response",
                self._response_body(ex, run.sent, run.finish, run.outcome, run.result, receipt, run.reason),
            )
        ]
        await self.audit(ex, entries)
        self._finish(ex, run.outcome, 200, run.result.completion_tokens)
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
