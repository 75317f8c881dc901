"""A fast OpenAI-compatible upstream for gateway tests and the load benchmark: it answers every
chat request with a fixed text (streamed word by word, ``delay`` seconds apart), so what is
measured or tested is the gateway, not a model.

Endless mode (``--endless`` or ``app.state.endless = True``): a streamed answer repeats the text
until the client goes away, so a test that must stop a stream midway (the kill switch) does not
depend on how fast the machine gets through a fixed number of tokens. A hard cap
(``app.state.endless_cap_s``, default 120 s) ends it with ``finish_reason: "length"`` so nothing
can hang forever. ``app.state.open_streams`` counts the streams being sent right now.

    python tests/servers/stub_upstream.py --port 9001 [--delay 0.05] [--text "..."] [--endless]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

DEFAULT_TEXT = "Paris is the capital of France. It lies on the Seine and is known for its museums and cafes."


ENDLESS_CAP_S = 120.0


def build_stub(text: str = DEFAULT_TEXT, delay: float = 0.0, model: str = "stub", endless: bool = False) -> FastAPI:
    app = FastAPI()
    app.state.requests = 0
    app.state.endless = endless
    app.state.endless_cap_s = ENDLESS_CAP_S
    app.state.open_streams = 0
    words = [w + " " for w in text.split(" ")]
    words[-1] = words[-1].rstrip()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "stub"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        app.state.requests += 1
        rid, created = f"stub-{app.state.requests}", int(time.time())
        answer = app.state.text if hasattr(app.state, "text") else text
        parts = [w + " " for w in answer.split(" ")]
        parts[-1] = parts[-1].rstrip()
        usage = {"prompt_tokens": 5, "completion_tokens": len(parts), "total_tokens": 5 + len(parts)}
        if not body.get("stream"):
            if delay:
                await asyncio.sleep(delay * len(parts))
            return JSONResponse(
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                }
            )

        endless, cap = bool(app.state.endless), float(app.state.endless_cap_s)
        cycle = [w if w.endswith(" ") else w + " " for w in parts] if endless else parts

        def chunk(delta: dict, finish: str | None) -> str:
            return (
                "data: "
                + json.dumps(
                    {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                )
                + "\n\n"
            )

        async def events():
            app.state.open_streams += 1
            try:
                finish, deadline, sent = "stop", time.monotonic() + cap, 0
                while True:
                    for w in cycle:
                        if delay:
                            await asyncio.sleep(delay)
                        elif endless:
                            await asyncio.sleep(0.001)  # never starve the event loop
                        yield chunk({"content": w}, None)
                        sent += 1
                        # uvicorn drops writes to a closed connection silently: look for the
                        # disconnect ourselves, or an endless stream would run to its cap.
                        if endless and sent % 10 == 0:
                            if await request.is_disconnected():
                                return
                            if time.monotonic() > deadline:
                                break  # the hard cap: an endless stream never outlives it
                    if not endless or time.monotonic() > deadline:
                        finish = "length" if endless else "stop"
                        break
                usage = {"prompt_tokens": 5, "completion_tokens": sent, "total_tokens": 5 + sent}
                yield chunk({}, finish)
                yield (
                    "data: "
                    + json.dumps(
                        {
                            "id": rid,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                    + "\n\n"
                )
                yield "data: [DONE]\n\n"
            finally:
                app.state.open_streams -= 1

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--text", default=DEFAULT_TEXT)
    ap.add_argument("--endless", action="store_true", help="stream until the client disconnects (capped at 120 s)")
    a = ap.parse_args()
    uvicorn.run(build_stub(a.text, a.delay, endless=a.endless), host="127.0.0.1", port=a.port, log_level="warning")
