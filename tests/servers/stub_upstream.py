"""A fast OpenAI-compatible upstream for gateway tests and the load benchmark: it answers every
chat request with a fixed text (streamed word by word, ``delay`` seconds apart), so what is
measured or tested is the gateway, not a model.

    python tests/servers/stub_upstream.py --port 9001 [--delay 0.05] [--text "..."]
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


def build_stub(text: str = DEFAULT_TEXT, delay: float = 0.0, model: str = "stub") -> FastAPI:
    app = FastAPI()
    app.state.requests = 0
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
            return JSONResponse({"id": rid, "object": "chat.completion", "created": created, "model": model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                              "finish_reason": "stop"}], "usage": usage})

        async def events():
            for w in parts:
                if delay:
                    await asyncio.sleep(delay)
                yield "data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                                             "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}) + "\n\n"
            yield "data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                                         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n"
            yield "data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                                         "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--text", default=DEFAULT_TEXT)
    a = ap.parse_args()
    uvicorn.run(build_stub(a.text, a.delay), host="127.0.0.1", port=a.port, log_level="warning")
