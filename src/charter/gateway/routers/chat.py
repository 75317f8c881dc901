"""POST /v1/chat/completions and GET /v1/models.

Per request: kill switch → input guard → generation (streamed or not) with the streaming output
guard and the kill switch checked between chunks → receipt → audit entries, committed before the
client gets the final byte. A blocked request is answered with the constitution's refusal in a
normal completion whose finish_reason is ``content_filter`` and whose ``X-Charter-Guard`` header
says which side blocked, so clients keep working.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from charter.gateway import schemas
from charter.gateway.compliance import Notice
from charter.gateway.deps import get_state, require_tenant
from charter.gateway.errors import APIError, validation_message
from charter.gateway.state import GatewayState
from charter.gateway.tenants import Tenant
from charter.gateway.upstream import GenParams, StreamResult, UpstreamError
from charter.provenance.receipts import sign_receipt

router = APIRouter(tags=["chat"])
access = logging.getLogger("charter.gateway.access")
log = logging.getLogger("charter.gateway")

_REQUEST_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": schemas.ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}}


@router.get("/v1/models")
async def list_models(tenant: Tenant = Depends(require_tenant), state: GatewayState = Depends(get_state)):
    return {"object": "list", "data": [{"id": state.upstream.model_id, "object": "model", "created": 0,
                                        "owned_by": "charter", "charter": {"sealed": state.attestation.sealed,
                                                                           "statement_digest": state.attestation.statement_digest}}]}


MAX_SESSION_ID = 256  # X-Charter-Session, like `user`: the sessions table keys on tenant + session id


async def _read_request(request: Request) -> schemas.ChatCompletionRequest:
    # The body's size is capped before this runs, for every route ([server] max_body_bytes,
    # middleware.BodyLimit); here it is parsed, with nesting too deep for the parser refused.
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise APIError(400, "request body is not valid JSON", code="invalid_json") from None
    except RecursionError:
        raise APIError(400, "request body is nested too deeply", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    try:
        return schemas.ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        msg, param = validation_message(exc.errors())
        raise APIError(400, msg, param=param) from None


@dataclass
class _Exchange:
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

    def timed(self, stage: str, since: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + (time.perf_counter() - since) * 1000

    def server_timing(self) -> str:
        parts = [f"{k};dur={v:.3f}" for k, v in self.timings.items()]
        return ", ".join(parts + [f"gateway;dur={(time.perf_counter() - self.t0) * 1000:.3f}"])

    def request_body(self) -> dict:
        return {"model": self.model, "messages": self.messages, "session": self.session,
                "params": {"max_tokens": self.params.max_tokens, "temperature": self.params.temperature,
                           "top_p": self.params.top_p, "seed": self.params.seed, "stop": self.params.stop}}


def _decision_entry(side: str, decision) -> tuple[str, dict]:
    d = decision.to_dict()
    return (f"guard.{side}.{'blocked' if decision.block else 'allowed'}", d)


@router.post("/v1/chat/completions", openapi_extra=_REQUEST_SCHEMA)
async def chat_completions(request: Request, tenant: Tenant = Depends(require_tenant),
                           state: GatewayState = Depends(get_state)):
    req = await _read_request(request)
    session = request.headers.get("x-charter-session") or req.user
    if session is not None and len(session) > MAX_SESSION_ID:
        raise APIError(400, f"X-Charter-Session: at most {MAX_SESSION_ID} characters", param="X-Charter-Session",
                       code="invalid_session")
    if req.model != state.upstream.model_id:
        raise APIError(404, f"the model {req.model!r} does not exist on this gateway (it serves {state.upstream.model_id!r})",
                       param="model", code="model_not_found")
    u = state.config.upstream
    rid = "chatcmpl-" + uuid.uuid4().hex
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    if state.system_prompt and not any(m["role"] in ("system", "developer") for m in messages):
        messages = [{"role": "system", "content": state.system_prompt}] + messages
    prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    params = GenParams(max_tokens=min(req.max_completion_tokens or req.max_tokens or u.max_new_tokens, u.max_new_tokens),
                       temperature=u.temperature if req.temperature is None else req.temperature,
                       top_p=u.top_p if req.top_p is None else req.top_p,
                       # an int64 seed as the unsigned 64-bit value every backend's generator takes
                       seed=req.seed % 2**64 if req.seed is not None else uuid.uuid4().int % (2**31), stop=req.stop_list())
    ex = _Exchange(rid, tenant.name, state.upstream.model_id, messages, prompt, params, time.perf_counter(),
                   session=session)
    headers = {"X-Charter-Request-Id": rid, "X-Charter-Statement-Digest": state.attestation.header}

    suspension = state.killswitch.suspended(ex.model, ex.tenant)
    if suspension:
        await run_in_threadpool(state.log.append, "chat.suspended", ex.request_body() | {"reason": suspension.reason},
                                tenant=tenant.name, request_id=rid)
        _finish(state, ex, "suspended", 503)
        raise APIError(503, f"the model is suspended: {suspension.reason}", "service_unavailable", code="model_suspended",
                       headers=headers)

    if state.compliance.active:
        c, t = state.compliance, time.perf_counter()
        # Thread hops only for work that blocks: the session row, the distress classifier.
        ex.notice = (await run_in_threadpool(c.on_request, tenant.name, ex.session) if c.tracks_sessions
                     else c.on_request(tenant.name, ex.session))
        ex.timed("compliance", t)
        if ex.notice.handoff_reason is None and c.distress is not None and await run_in_threadpool(c.check_distress, prompt):
            ex.notice.handoff_reason = "distress"
        if ex.notice.handoff_reason:
            return await _handoff(state, ex, req, headers)
        if state.upstream.local:
            ex.params.watermark = state.compliance.watermark_config()

    in_dec = None
    if state.has_guard("input"):
        t = time.perf_counter()
        in_dec = await run_in_threadpool(state.guard.check_input, prompt)
        ex.timed("input-guard", t)
        _count_decision(state, "input", in_dec)
    if in_dec is not None and in_dec.block:
        return await _blocked_input(state, ex, in_dec, req, headers)
    if req.stream:
        await _audit(state, ex, _request_entries(ex, [_decision_entry("input", in_dec)] if in_dec else []))
        dressing = _dress(state, ex)
        return StreamingResponse(_stream(state, ex, req, in_dec, dressing), media_type="text/event-stream",
                                 headers=headers | dressing[3] | {"X-Charter-Guard": "streaming", "Cache-Control": "no-cache"})
    return await _complete(state, ex, in_dec, headers)


async def _complete(state: GatewayState, ex: _Exchange, in_dec, headers: dict):
    result = StreamResult()
    t = time.perf_counter()
    gen = asyncio.ensure_future(state.upstream.complete(ex.messages, ex.params, result))
    suspension = await _race_killswitch(state, ex.model, gen, ex.tenant)
    ex.timed("upstream", t)
    if suspension is None:
        try:
            text = gen.result()
        except UpstreamError as exc:  # the detail goes to the log and the audit entry, never to the client
            log.warning("upstream error on %s: %s", ex.rid, exc)
            await run_in_threadpool(state.log.append, "chat.error", ex.request_body() | {"error": str(exc)},
                                    tenant=ex.tenant, request_id=ex.rid)
            _finish(state, ex, "upstream_error", 502)
            raise APIError(502, f"the upstream model failed to answer (request {ex.rid}; the detail is logged)",
                           "upstream_error", code="upstream_error", headers=headers) from None
    out_dec, finish, content, guard = None, result.finish_reason, None, "allowed"
    if suspension is not None:
        content, finish, guard = state.refusal, "content_filter", "suspended"
    else:
        content = text
        if state.has_guard("output"):
            t = time.perf_counter()
            out_dec = await run_in_threadpool(state.guard.check_output, text, ex.prompt)
            ex.timed("output-guard", t)
            _count_decision(state, "output", out_dec)
            if out_dec.block:
                content, finish, guard = state.refusal, "content_filter", "blocked-output"
    prefix, suffix, dress, dress_headers = _dress(state, ex)
    content = prefix + content + suffix
    extra = {"guard": guard, "request_id": ex.rid} | dress
    t = time.perf_counter()
    receipt = _receipt(state, ex, content)
    ex.timed("receipt", t)
    entries = _request_entries(ex, [_decision_entry("input", in_dec)] if in_dec else [])
    entries += [_decision_entry("output", out_dec)] if out_dec else []
    entries.append(("chat.response", _response_body(content, finish, guard, result, receipt,
                                                    suspension.reason if suspension else None, ex)))
    await _audit(state, ex, entries)
    if receipt:
        extra["receipt"] = receipt
        headers = headers | {"X-Charter-Receipt": _b64(receipt)}
    _finish(state, ex, guard, 200, result.completion_tokens)
    body = schemas.completion(ex.rid, ex.model, content, finish, schemas.usage(result.prompt_tokens, result.completion_tokens), extra)
    return JSONResponse(body, headers=headers | dress_headers | {"X-Charter-Guard": guard, "Server-Timing": ex.server_timing()})


async def _race_killswitch(state: GatewayState, model: str, task: asyncio.Future, tenant: str | None = None):
    """Wait for ``task``; if the kill switch trips first, cancel it and return the suspension."""
    poll = state.config.server.poll_seconds
    while True:
        done, _ = await asyncio.wait({task}, timeout=poll)
        if done:
            return None
        s = state.killswitch.suspended(model, tenant)
        if s:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return s


async def _blocked_input(state: GatewayState, ex: _Exchange, in_dec, req, headers: dict):
    return await _canned(state, ex, req, headers, state.refusal, "content_filter", "blocked-input",
                         [_decision_entry("input", in_dec)], {"category": in_dec.category, "principle": in_dec.principle})


async def _handoff(state: GatewayState, ex: _Exchange, req, headers: dict):
    """Dependency safeguard: answer with the hand-off message instead of the model, call the
    counsellor webhook once for this hand-off, and log both."""
    n = ex.notice
    c = state.compliance
    payload = {"tenant": ex.tenant, "session": n.session, "request_id": ex.rid, "reason": n.handoff_reason,
               "continuous_minutes": round(n.continuous_minutes, 2)}
    if n.handoff_reason == "distress":
        await run_in_threadpool(c.mark_handoff, ex.tenant, n.session)
    hook = await run_in_threadpool(c.call_webhook, payload)
    return await _canned(state, ex, req, headers | {"X-Charter-Compliance": "handoff"}, c.profile.get("dependency.handoff_text"),
                         "stop", "handoff", [("compliance.handoff", payload | hook)], {"handoff": n.handoff_reason})


async def _canned(state: GatewayState, ex: _Exchange, req, headers: dict, text: str, finish: str, outcome: str,
                  entries_before: list, info: dict):
    """An answer the gateway writes itself (refusal, hand-off), streamed or not, dressed and audited."""
    prefix, suffix, dress, dress_headers = _dress(state, ex)
    content = prefix + text + suffix
    receipt = _receipt(state, ex, content)
    entries = _request_entries(ex, entries_before) + [
        ("chat.response", _response_body(content, finish, outcome, StreamResult(), receipt, None, ex))]
    await _audit(state, ex, entries)
    _finish(state, ex, outcome, 200)
    extra = {"guard": outcome, "request_id": ex.rid} | info | dress | ({"receipt": receipt} if receipt else {})
    h = headers | dress_headers | {"X-Charter-Guard": outcome} | ({"X-Charter-Receipt": _b64(receipt)} if receipt else {})
    if not req.stream:
        return JSONResponse(schemas.completion(ex.rid, ex.model, content, finish, schemas.usage(0, 0), extra), headers=h)

    async def one_shot():
        created = int(time.time())
        yield _sse(schemas.chunk(ex.rid, ex.model, created, {"role": "assistant", "content": content}))
        yield _sse(schemas.chunk(ex.rid, ex.model, created, {}, finish, extra))
        yield "data: [DONE]\n\n"

    return StreamingResponse(one_shot(), media_type="text/event-stream", headers=h)


def _dress(state: GatewayState, ex: _Exchange) -> tuple[str, str, dict, dict]:
    """What the compliance profile adds to an answer: text before and after it (disclosure,
    visible label), body fields and headers."""
    c = state.compliance
    if not c.active:
        return "", "", {}, {}
    prefix, suffix, extra, headers = "", "", {}, {}
    n = ex.notice
    if n is not None and n.disclosure:
        prefix = n.disclosure + "\n\n"
        extra["disclosure"] = {"text": n.disclosure, "reason": n.disclosure_reason}
        headers["X-Charter-Disclosure"] = n.disclosure_reason
    lp, ls = c.label_parts()
    prefix, suffix = prefix + lp, ls
    meta = c.label_metadata(ex.model, "charter", ex.params.watermark is not None)
    if meta:
        extra["label"] = meta
    if c.profile.get("label.header"):
        headers["X-Charter-AI-Generated"] = "true"
    return prefix, suffix, extra, headers


def _request_entries(ex: _Exchange, decisions: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The entries every answer's audit record starts with: the request, its disclosure, decisions."""
    return [("chat.request", ex.request_body())] + _compliance_entries(ex) + decisions


def _compliance_entries(ex: _Exchange) -> list[tuple[str, dict]]:
    n = ex.notice
    if n is None or not n.disclosure:
        return []
    return [("compliance.disclosure", {"session": n.session, "reason": n.disclosure_reason, "text": n.disclosure,
                                       "continuous_minutes": round(n.continuous_minutes, 2)})]


async def _stream(state: GatewayState, ex: _Exchange, req, in_dec, dressing: tuple[str, str, dict, dict]):
    """SSE body. Text is released only after the output check that covers it; the kill switch is
    looked at between chunks and while waiting for one (at most ``poll_seconds`` apart)."""
    created = int(time.time())
    result = StreamResult()
    every = state.config.guard.stream_every
    guarded = state.has_guard("output")
    poll = state.config.server.poll_seconds
    agen = state.upstream.stream(ex.messages, ex.params, result).__aiter__()
    text, pending, n = "", "", 0
    finish, guard, out_dec, reason, sent = None, "allowed", None, None, ""
    nxt = None
    prefix, suffix, dress, _ = dressing
    try:
        yield _sse(schemas.chunk(ex.rid, ex.model, created, {"role": "assistant", "content": prefix}))
        sent = prefix
        while finish is None:
            nxt = asyncio.ensure_future(agen.__anext__())
            while True:
                done, _ = await asyncio.wait({nxt}, timeout=poll)
                s = state.killswitch.suspended(ex.model, ex.tenant)
                if s:
                    nxt.cancel()
                    await asyncio.gather(nxt, return_exceptions=True)
                    finish, guard, reason = "content_filter", "suspended", s.reason
                    break
                if done:
                    break
            if finish:
                break
            try:
                chunk = nxt.result()
            except StopAsyncIteration:
                break
            text, pending, n = text + chunk, pending + chunk, n + 1
            if not guarded:
                sent += pending
                yield _sse(schemas.chunk(ex.rid, ex.model, created, {"content": pending}))
                pending = ""
            elif n % every == 0:
                out_dec = await run_in_threadpool(state.guard.check_output, text, ex.prompt)
                _count_decision(state, "output", out_dec)
                if out_dec.block:
                    finish, guard = "content_filter", "blocked-output"
                    break
                sent += pending
                yield _sse(schemas.chunk(ex.rid, ex.model, created, {"content": pending}))
                pending = ""
        if finish is None and guarded:
            out_dec = await run_in_threadpool(state.guard.check_output, text, ex.prompt)
            _count_decision(state, "output", out_dec)
            if out_dec.block:
                finish, guard = "content_filter", "blocked-output"
        if finish is None:
            finish = result.finish_reason
            if pending or suffix:
                sent += pending + suffix
                yield _sse(schemas.chunk(ex.rid, ex.model, created, {"content": pending + suffix}))
        else:
            tail = ("\n\n" if sent != prefix else "") + state.refusal + suffix
            sent += tail
            yield _sse(schemas.chunk(ex.rid, ex.model, created, {"content": tail}))
    except UpstreamError as exc:  # the detail goes to the log, not into the stream
        log.warning("upstream error on %s: %s", ex.rid, exc)
        finish, guard, reason = "error", "upstream-error", str(exc)  # audited; the client gets a generic reason
    finally:
        # Shielded: when the client disconnects, the server cancels this generator, and anyio's
        # cancellation would otherwise abort every await here, losing the response entry.
        with anyio.CancelScope(shield=True):
            if nxt is not None and not nxt.done():  # a pending read holds the generator: stop it first
                nxt.cancel()
                await asyncio.gather(nxt, return_exceptions=True)
            await agen.aclose()
            if finish is None:  # the client went away mid-stream
                finish, guard = "aborted", "client-disconnected"
            receipt = _receipt(state, ex, sent)
            entries = ([_decision_entry("output", out_dec)] if out_dec else []) + [
                ("chat.response", _response_body(sent, finish, guard, result, receipt, reason, ex))]
            await _audit(state, ex, entries)
            _finish(state, ex, guard, 200, result.completion_tokens)
    if guard == "upstream-error":
        reason = "the upstream model failed mid-stream (the detail is logged)"
    extra = {"guard": guard, "request_id": ex.rid} | dress | ({"receipt": receipt} if receipt else {}) | (
        {"reason": reason} if reason else {})
    yield _sse(schemas.chunk(ex.rid, ex.model, created, {}, finish, extra))
    if req.stream_options and req.stream_options.include_usage:
        u = schemas.chunk(ex.rid, ex.model, created, {})
        u["choices"], u["usage"] = [], schemas.usage(result.prompt_tokens, result.completion_tokens)
        yield _sse(u)
    yield "data: [DONE]\n\n"


def _response_body(content, finish, guard, result: StreamResult, receipt, reason, ex: _Exchange) -> dict:
    return {"content": content, "finish_reason": finish, "guard": guard, "reason": reason,
            "usage": schemas.usage(result.prompt_tokens, result.completion_tokens),
            "latency_ms": round((time.perf_counter() - ex.t0) * 1000, 3),
            "receipt_signature": receipt["signatures"][0]["sig"] if receipt else None}


async def _audit(state: GatewayState, ex: _Exchange, entries: list[tuple[str, dict]]) -> None:
    t = time.perf_counter()
    await asyncio.wrap_future(state.writer.submit([(k, b, ex.tenant, ex.rid) for k, b in entries]))
    state.metrics.audit_entries.inc(len(entries))
    ex.timed("audit", t)
    for kind, _ in entries:
        if kind.endswith(".blocked"):
            await run_in_threadpool(state.tripwire.observe, kind, ex.model, ex.tenant)


def _receipt(state: GatewayState, ex: _Exchange, content: str) -> dict | None:
    if not state.config.server.receipts:
        return None
    return sign_receipt(state.runtime_key, statement_digest=state.attestation.receipt_digest,
                        request_id=ex.rid, prompt=ex.prompt, output=content)


def _count_decision(state: GatewayState, side: str, d) -> None:
    state.metrics.decisions.labels(side, d.stage, str(bool(d.block)).lower()).inc()
    state.metrics.guard_latency.labels(side).observe(sum(d.latency_ms.values()) / 1000)


def _finish(state: GatewayState, ex: _Exchange, outcome: str, status: int, tokens: int = 0) -> None:
    elapsed = time.perf_counter() - ex.t0
    state.metrics.requests.labels(outcome).inc()
    state.metrics.latency.observe(elapsed)
    state.metrics.tokens.inc(tokens)
    if state.config.server.log_requests:
        access.info(json.dumps({"event": "chat", "request_id": ex.rid, "tenant": ex.tenant, "model": ex.model,
                                "outcome": outcome, "status": status, "latency_ms": round(elapsed * 1000, 2),
                                "completion_tokens": tokens}))


def _sse(obj: dict) -> str:
    return "data: " + json.dumps(obj, separators=(",", ":")) + "\n\n"


def _b64(obj: dict) -> str:
    import base64

    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()
