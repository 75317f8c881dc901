"""Any OpenAI-compatible server (vLLM, TGI, llama.cpp server, Ollama, Charter's own gateway).

Requests run concurrently (asyncio + httpx) with retries, exponential backoff and timeouts.
Scoring: a raw-text context is scored exactly through ``/completions`` with ``echo`` and
``logprobs`` (vLLM and others support it); a chat context can only be scored through the first
generated token's ``top_logprobs``, so continuations must differ in their first token there.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence

import httpx

from charter.backends.base import (
    Backend,
    BackendInfo,
    Conversation,
    Generation,
    SamplingConfig,
    ScoreRequest,
    seeds_for,
)
from charter.core.errors import BackendError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIBackend(Backend):
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        spec: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 4,
        backoff: float = 0.5,
        top_logprobs: int = 20,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise BackendError("openai: URL must start with http:// or https://", source=spec or base_url)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key or os.environ.get("CHARTER_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.top_logprobs = int(top_logprobs)
        self.info = BackendInfo(
            spec=spec or f"openai:{base_url}#{model}",
            backend="openai",
            model=f"{self.base_url}#{model}",
            options={"concurrency": self.concurrency, "timeout": self.timeout, "retries": self.retries},
        )
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not inside an event loop: check the endpoint now
            self._run(self._ping())

    async def _ping(self) -> None:
        """Fail at load time, in one line, when the endpoint cannot be reached at all."""
        async with self._client() as client:
            await self._request(client, "GET", "/models", None, any_status=True)

    # -- transport -------------------------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency)
        return httpx.AsyncClient(timeout=self.timeout, headers=headers, limits=limits)

    async def _post(self, client: httpx.AsyncClient, path: str, body: dict) -> dict:
        return await self._request(client, "POST", path, body)

    async def _request(
        self, client: httpx.AsyncClient, method: str, path: str, body: dict | None, any_status: bool = False
    ) -> dict:
        """One request with retries (transport errors, 408/429/5xx) and jittered backoff.
        ``any_status``: any HTTP answer is success (a reachability check)."""
        url = f"{self.base_url}{path}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = await client.request(method, url, json=body)
            except httpx.TransportError as exc:
                if last:
                    raise BackendError(
                        f"cannot reach {url}: {type(exc).__name__}: {exc or 'no response'}"
                        f" (after {self.retries + 1} attempts)",
                        source=self.info.spec,
                    ) from None
            else:
                if any_status:
                    return {}
                if resp.status_code < 400:
                    try:
                        return resp.json()
                    except ValueError:
                        raise BackendError(
                            f"{url} answered with something that is not JSON", source=self.info.spec
                        ) from None
                if resp.status_code not in RETRY_STATUS or last:
                    detail = resp.text[:200].replace("\n", " ")
                    raise BackendError(f"{url} answered HTTP {resp.status_code}: {detail}", source=self.info.spec)
            # Full jitter keeps many workers from retrying in lock-step.
            await asyncio.sleep(random.uniform(0, self.backoff * 2**attempt))
        raise AssertionError("unreachable")

    def _run(self, coro):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        coro.close()
        raise RuntimeError("called from a running event loop: use the async methods (agenerate/ascore)")

    # -- generation ------------------------------------------------------------------------------
    async def agenerate(self, conversations, config: SamplingConfig, seeds=None) -> list[Generation]:
        seeds = seeds_for(config, len(conversations), seeds)
        sem = asyncio.Semaphore(self.concurrency)
        async with self._client() as client:

            async def one(conv: Conversation, seed: int) -> Generation:
                body = {
                    "model": self.model,
                    "messages": conv,
                    "max_tokens": config.max_new_tokens,
                    "temperature": max(config.temperature, 0.0),
                    "top_p": config.top_p if not config.greedy else 1.0,
                    "seed": seed,
                }
                async with sem:
                    data = await self._post(client, "/chat/completions", body)
                try:
                    choice = data["choices"][0]
                    usage = data.get("usage") or {}
                    return Generation(
                        (choice["message"].get("content") or "").strip(),
                        int(usage.get("prompt_tokens", 0)),
                        int(usage.get("completion_tokens", 0)),
                        choice.get("finish_reason") or "stop",
                    )
                except (KeyError, IndexError, TypeError) as exc:
                    raise BackendError(
                        f"malformed chat completion from server: {exc!r}", source=self.info.spec
                    ) from None

            return list(await asyncio.gather(*(one(c, s) for c, s in zip(conversations, seeds))))

    def generate(self, conversations, config: SamplingConfig, seeds=None) -> list[Generation]:
        return self._run(self.agenerate(conversations, config, seeds))

    # -- scoring ---------------------------------------------------------------------------------
    @property
    def supports_exact_scoring(self) -> bool:
        return False  # exact only for raw-text contexts; see module docstring

    async def ascore(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        sem = asyncio.Semaphore(self.concurrency)
        async with self._client() as client:

            async def raw(context: str, cont: str) -> float:
                body = {
                    "model": self.model,
                    "prompt": context + cont,
                    "max_tokens": 0,
                    "echo": True,
                    "logprobs": 0,
                    "temperature": 0.0,
                }
                async with sem:
                    data = await self._post(client, "/completions", body)
                return self._continuation_logprob(data, len(context), len(context) + len(cont))

            async def chat(req: ScoreRequest) -> list[float]:
                firsts = [c.lstrip() for c in req.continuations]
                body = {
                    "model": self.model,
                    "messages": req.context,
                    "max_tokens": 1,
                    "temperature": 0.0,
                    "logprobs": True,
                    "top_logprobs": self.top_logprobs,
                }
                async with sem:
                    data = await self._post(client, "/chat/completions", body)
                return self._first_token_scores(data, firsts)

            async def one(req: ScoreRequest) -> list[float]:
                if isinstance(req.context, str):
                    return list(await asyncio.gather(*(raw(req.context, c) for c in req.continuations)))
                return await chat(req)

            return list(await asyncio.gather(*(one(r) for r in requests)))

    def _continuation_logprob(self, data: dict, start: int, end: int) -> float:
        """From an echoed /completions response: the summed logprob of the text in [start, end)."""
        try:
            lp = data["choices"][0]["logprobs"]
            offsets, values = lp["text_offset"], lp["token_logprobs"]
            tokens = lp.get("tokens") or [""] * len(offsets)
            total = 0.0
            for offset, value, tok in zip(offsets, values, tokens):
                # A token counts when it covers continuation text: one that straddles the
                # boundary (" Yes" after "Answer:") belongs to the continuation; tokens
                # past the end (a server that generated anyway) do not.
                if offset < end and offset + max(len(tok), 1) > start and value is not None:
                    total += float(value)
            return total
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(
                f"server gave no prompt logprobs for scoring ({type(exc).__name__}: {exc}); "
                "it needs /completions with echo and logprobs",
                source=self.info.spec,
            ) from None

    def _first_token_scores(self, data: dict, firsts: list[str]) -> list[float]:
        """From a one-token /chat/completions response: each continuation's score, the logprob of
        the top candidate token covering the longest prefix of it (-inf when none does)."""
        try:
            top = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(
                f"server gave no top_logprobs for scoring ({type(exc).__name__}: {exc})",
                source=self.info.spec,
            ) from None
        scores = []
        for cont in firsts:
            best = None
            for entry in top:
                tok = entry["token"].strip()
                if tok and cont.startswith(tok) and (best is None or len(tok) > len(best[0])):
                    best = (tok, float(entry["logprob"]))
            scores.append(best[1] if best else float("-inf"))
        return scores

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        return self._run(self.ascore(requests))
