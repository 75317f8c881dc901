"""POST /v1/chat/completions and GET /v1/models: parsing and framing only.

The request is parsed into an ``exchange.Exchange`` and run through ``pipeline.ExchangePipeline``
(kill switch → input guard → generation under the output guard → receipt and audit); this module
turns its answers into OpenAI-format JSON bodies or SSE chunks and its two failures into errors.
"""

from __future__ import annotations

import json
import time
import uuid

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from charter.gateway import schemas
from charter.gateway.deps import get_state, require_tenant
from charter.gateway.errors import APIError, validation_message
from charter.gateway.exchange import Answer, Delta, Exchange, Suspended, UpstreamFailed
from charter.gateway.pipeline import ExchangePipeline
from charter.gateway.state import GatewayState
from charter.gateway.tenants import Tenant
from charter.gateway.upstream import GenParams

router = APIRouter(tags=["chat"])

_REQUEST_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": schemas.ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            }
        },
    }
}


@router.get("/v1/models")
async def list_models(tenant: Tenant = Depends(require_tenant), state: GatewayState = Depends(get_state)):
    return {
        "object": "list",
        "data": [
            {
                "id": state.upstream.model_id,
                "object": "model",
                "created": 0,
                "owned_by": "charter",
                "charter": {"sealed": state.attestation.sealed, "statement_digest": state.attestation.statement_digest},
            }
        ],
    }


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


@router.post("/v1/chat/completions", openapi_extra=_REQUEST_SCHEMA)
async def chat_completions(
    request: Request, tenant: Tenant = Depends(require_tenant), state: GatewayState = Depends(get_state)
):
    req = await _read_request(request)
    ex = _exchange(request, req, tenant, state)
    headers = {"X-Charter-Request-Id": ex.rid, "X-Charter-Statement-Digest": state.attestation.header}
    pipe = ExchangePipeline(state)
    try:
        answer = await pipe.admit(ex) or await pipe.screen_input(ex)
    except Suspended as s:
        raise APIError(
            503, f"the model is suspended: {s.reason}", "service_unavailable", code="model_suspended", headers=headers
        ) from None
    if answer is not None:
        return _respond(ex, req, answer, headers)
    if req.stream:
        dress = await pipe.open_stream(ex)
        return StreamingResponse(
            _sse_stream(pipe.stream(ex, dress), ex, req),
            media_type="text/event-stream",
            headers=headers | dress.headers | {"X-Charter-Guard": "streaming", "Cache-Control": "no-cache"},
        )
    try:
        answer = await pipe.complete(ex)
    except UpstreamFailed:
        raise APIError(
            502,
            f"the upstream model failed to answer (request {ex.rid}; the detail is logged)",
            "upstream_error",
            code="upstream_error",
            headers=headers,
        ) from None
    return _respond(ex, req, answer, headers)


def _exchange(request: Request, req: schemas.ChatCompletionRequest, tenant: Tenant, state: GatewayState) -> Exchange:
    session = request.headers.get("x-charter-session") or req.user
    if session is not None and len(session) > MAX_SESSION_ID:
        raise APIError(
            400,
            f"X-Charter-Session: at most {MAX_SESSION_ID} characters",
            param="X-Charter-Session",
            code="invalid_session",
        )
    if req.model != state.upstream.model_id:
        raise APIError(
            404,
            f"the model {req.model!r} does not exist on this gateway (it serves {state.upstream.model_id!r})",
            param="model",
            code="model_not_found",
        )
    u = state.config.upstream
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    if state.system_prompt and not any(m["role"] in ("system", "developer") for m in messages):
        messages = [{"role": "system", "content": state.system_prompt}] + messages
    prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    params = GenParams(
        max_tokens=min(req.max_completion_tokens or req.max_tokens or u.max_new_tokens, u.max_new_tokens),
        temperature=u.temperature if req.temperature is None else req.temperature,
        top_p=u.top_p if req.top_p is None else req.top_p,
        # an int64 seed as the unsigned 64-bit value every backend's generator takes
        seed=req.seed % 2**64 if req.seed is not None else uuid.uuid4().int % (2**31),
        stop=req.stop_list(),
    )
    return Exchange(
        "chatcmpl-" + uuid.uuid4().hex,
        tenant.name,
        state.upstream.model_id,
        messages,
        prompt,
        params,
        time.perf_counter(),
        session=session,
    )


def _respond(ex: Exchange, req, answer: Answer, headers: dict):
    """An answer as one JSON completion, or (stream requested) as two SSE chunks."""
    h = headers | answer.headers
    if not req.stream:
        return JSONResponse(
            schemas.completion(ex.rid, ex.model, answer.content, answer.finish, answer.usage, answer.fields), headers=h
        )

    async def one_shot():
        created = int(time.time())
        yield _sse(schemas.chunk(ex.rid, ex.model, created, {"role": "assistant", "content": answer.content}))
        yield _sse(schemas.chunk(ex.rid, ex.model, created, {}, answer.finish, answer.fields))
        yield "data: [DONE]\n\n"

    return StreamingResponse(one_shot(), media_type="text/event-stream", headers=h)


async def _sse_stream(events, ex: Exchange, req):
    """The pipeline's deltas as SSE chunks (the first carries the role), then the final chunk, usage
    when asked for, and [DONE]. Closed early (the client went away), the pipeline's stream is closed
    too, shielded, so that it still audits the response."""
    created, first = int(time.time()), True
    try:
        async for ev in events:
            if isinstance(ev, Delta):
                delta = {"role": "assistant", "content": ev.text} if first else {"content": ev.text}
                first = False
                yield _sse(schemas.chunk(ex.rid, ex.model, created, delta))
                continue
            yield _sse(schemas.chunk(ex.rid, ex.model, created, {}, ev.finish, ev.fields))
            if req.stream_options and req.stream_options.include_usage:
                u = schemas.chunk(ex.rid, ex.model, created, {})
                u["choices"], u["usage"] = [], ev.usage
                yield _sse(u)
            yield "data: [DONE]\n\n"
    finally:
        with anyio.CancelScope(shield=True):
            await events.aclose()


def _sse(obj: dict) -> str:
    return "data: " + json.dumps(obj, separators=(",", ":")) + "\n\n"
