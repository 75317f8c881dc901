"""A small, real OpenAI-compatible HTTP server for tests: FastAPI + uvicorn on 127.0.0.1,
serving a tiny transformers model through Charter's HF backend.

Implements /v1/models, /v1/chat/completions (with logprobs/top_logprobs of the first generated
token) and /v1/completions (with echo + logprobs of the prompt tokens), and can be told to fail
the first N requests with HTTP 503 to exercise client retries.
"""

from __future__ import annotations

import socket
import threading
import time

import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request

from charter.backends.base import SamplingConfig
from charter.backends.hf import HFBackend


def build_app(backend: HFBackend, model_name: str = "tiny", fail_first: int = 0) -> FastAPI:
    app = FastAPI()
    state = {"failures_left": fail_first, "requests": 0, "in_flight": 0, "max_in_flight": 0}
    app.state.stats = state
    lock = threading.Lock()

    @app.middleware("http")
    async def flaky(request: Request, call_next):
        state["requests"] += 1
        if state["failures_left"] > 0:
            state["failures_left"] -= 1
            from fastapi.responses import JSONResponse

            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        return await call_next(request)

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "tests"}]}

    def top_logprobs(text: str, k: int):
        tok = backend.tokenizer
        ids = torch.tensor([backend._encode(text)])
        with torch.inference_mode():
            logp = torch.log_softmax(backend.model(input_ids=ids).logits[0, -1].float(), -1)
        values, idx = logp.topk(k)
        return [{"token": tok.decode([i]), "logprob": float(v)} for v, i in zip(values.tolist(), idx.tolist())]

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        if body.get("model") != model_name:
            raise HTTPException(404, f"model {body.get('model')!r} not found")
        with lock:
            state["in_flight"] += 1
            state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        try:
            messages = body["messages"]
            if body.get("logprobs"):
                k = int(body.get("top_logprobs") or 1)
                top = top_logprobs(backend.render(messages), k)
                return {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": model_name,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "length",
                            "message": {"role": "assistant", "content": top[0]["token"]},
                            "logprobs": {
                                "content": [
                                    {"token": top[0]["token"], "logprob": top[0]["logprob"], "top_logprobs": top}
                                ]
                            },
                        }
                    ],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1},
                }
            cfg = SamplingConfig(
                int(body.get("max_tokens") or 16), float(body.get("temperature", 0.7)), float(body.get("top_p", 1.0))
            )
            g = backend.generate([messages], cfg, seeds=[int(body.get("seed") or 0)])[0]
            time.sleep(0.02)  # let concurrent requests overlap measurably
            return {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": model_name,
                "choices": [
                    {"index": 0, "finish_reason": g.finish_reason, "message": {"role": "assistant", "content": g.text}}
                ],
                "usage": {
                    "prompt_tokens": g.prompt_tokens,
                    "completion_tokens": g.completion_tokens,
                    "total_tokens": g.prompt_tokens + g.completion_tokens,
                },
            }
        finally:
            with lock:
                state["in_flight"] -= 1

    @app.post("/v1/completions")
    def completions(body: dict):
        prompt = body["prompt"]
        if not (body.get("echo") and int(body.get("max_tokens") or 0) == 0):
            raise HTTPException(400, "this test server only implements echo scoring")
        tok = backend.tokenizer
        enc = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
        ids = [tok.bos_token_id] + enc["input_ids"]
        with torch.inference_mode():
            logp = torch.log_softmax(backend.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        # logits at position j predict ids[j + 1]; enc token k sits at ids[k + 1]
        token_logprobs = [float(logp[k, t]) for k, t in enumerate(enc["input_ids"])]
        return {
            "id": "cmpl-test",
            "object": "text_completion",
            "model": model_name,
            "choices": [
                {
                    "index": 0,
                    "text": prompt,
                    "finish_reason": "length",
                    "logprobs": {
                        "tokens": [tok.decode([i]) for i in enc["input_ids"]],
                        "token_logprobs": token_logprobs,
                        "text_offset": [a for a, _ in enc["offset_mapping"]],
                    },
                }
            ],
        }

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """uvicorn in a background thread; ``url`` is the OpenAI base URL (…/v1)."""

    def __init__(self, app: FastAPI):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.app = app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
