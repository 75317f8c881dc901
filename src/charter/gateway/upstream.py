"""Where answers come from: a local model (transformers, streamed token by token from a worker
thread) or any OpenAI-compatible server (proxied over httpx). Both expose the same async
``stream`` so the guard, the kill switch and the audit log treat them alike."""

from __future__ import annotations

import abc
import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from charter.backends.base import SamplingConfig
from charter.backends.spec import ModelSpec, load_backend
from charter.core.errors import BackendError, CharterError


class UpstreamError(CharterError):
    """The upstream model failed or answered with an error (the gateway answers 502)."""


@dataclass
class GenParams:
    max_tokens: int
    temperature: float
    top_p: float
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    watermark: dict | None = None  # compliance watermark settings (local upstreams only)


@dataclass
class StreamResult:
    """Filled in while a stream runs: usage and the upstream's finish reason."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


class Upstream(abc.ABC):
    model_id: str
    local: bool = False  # a local model can be watermarked and probed; a remote one cannot
    model_dir: str | None = None

    @abc.abstractmethod
    def stream(self, messages: list[dict], params: GenParams, result: StreamResult) -> AsyncIterator[str]: ...

    async def complete(self, messages: list[dict], params: GenParams, result: StreamResult) -> str:
        return "".join([c async for c in self.stream(messages, params, result)])

    async def aclose(self) -> None:  # pragma: no cover - default no-op
        pass


class LocalUpstream(Upstream):
    """A transformers model in this process. One generation at a time (CPU-bound); streams are
    bridged from the generating thread into asyncio through a queue."""

    local = True

    def __init__(self, spec: str, *, model_id: str | None = None, require_seal: str | None = None):
        s = ModelSpec.parse(spec)
        if s.kind == "embedded":
            s = ModelSpec.parse("embedded:hf" + (("?" + _query(s.options)) if s.options else ""))
        if s.kind not in ("embedded", "hf", "gguf"):
            raise BackendError("a local upstream must be embedded, hf:PATH or gguf:PATH", source=spec)
        if require_seal:
            if s.kind != "hf":
                raise BackendError(
                    "--require-seal needs a sealed hf:PATH model (embedded and gguf: models carry no seal)", source=spec
                )
            s = ModelSpec.parse(s.text + ("&" if "?" in s.text else "?") + f"require_seal={require_seal}")
        self.backend = load_backend(s)
        if not hasattr(self.backend, "stream"):
            raise BackendError("this backend cannot stream", source=spec)
        self.model_dir = s.target if s.kind == "hf" else None
        self.model_id = model_id or _default_id(s)
        self._lock = asyncio.Lock()

    async def stream(self, messages, params, result):
        cfg = SamplingConfig(max_new_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p)
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        done = object()

        from charter.gateway.watermark import generation_watermark

        watermark = generation_watermark(params.watermark)

        def work():
            gen = self.backend.stream(messages, cfg, params.seed, stop, watermark=watermark)
            try:
                while True:
                    loop.call_soon_threadsafe(queue.put_nowait, next(gen))
            except StopIteration as fin:
                counts = fin.value or {}
                result.prompt_tokens = counts.get("prompt_tokens", 0)
                result.completion_tokens = counts.get("completion_tokens", 0)
                result.finish_reason = "length" if result.completion_tokens >= params.max_tokens else "stop"
                loop.call_soon_threadsafe(queue.put_nowait, done)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        async with self._lock:
            task = loop.run_in_executor(None, work)
            text = ""
            try:
                while True:
                    item = await queue.get()
                    if item is done:
                        break
                    if isinstance(item, BaseException):
                        raise UpstreamError(f"local model failed: {item}") from item
                    text += item
                    if any(s in text for s in params.stop):
                        result.finish_reason = "stop"
                        yield item[
                            : max(0, len(item) - (len(text) - min(text.find(s) for s in params.stop if s in text)))
                        ]
                        break
                    yield item
            finally:
                stop.set()  # the consumer left (done, blocked, suspended or disconnected)
                await task


class OpenAIUpstream(Upstream):
    """Any OpenAI-compatible server. aiohttp rather than httpx on this hop: it is the gateway's
    per-request cost floor, and aiohttp spends about a quarter of httpx's CPU per request here."""

    def __init__(self, spec: str, *, model_id: str | None = None, timeout: float = 120.0, api_key: str | None = None):
        s = ModelSpec.parse(spec)
        if s.kind != "openai":
            raise BackendError("not an openai:URL#MODEL spec", source=spec)
        self.base_url, self.remote_model = s.target.rstrip("/"), s.model
        self.model_id = model_id or s.model
        key = api_key or os.environ.get("OPENAI_API_KEY")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.timeout = timeout
        self._session = None  # created in the serving event loop, on first use

    def _client(self):
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=256),
            )
        return self._session

    def _body(self, messages, params, stream: bool) -> dict:
        body = {
            "model": self.remote_model,
            "messages": messages,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": stream,
        }
        if params.stop:
            body["stop"] = params.stop
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, messages, params, result):
        import aiohttp

        try:
            async with self._client().post(
                self.base_url + "/chat/completions", json=self._body(messages, params, False)
            ) as r:
                if r.status != 200:
                    raise UpstreamError(f"upstream answered {r.status}: {(await r.text())[:200]}")
                data = await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError(f"upstream {self.base_url} unreachable: {exc.__class__.__name__}") from None
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise UpstreamError(f"upstream {self.base_url} sent a malformed completion") from None
        usage = data.get("usage") or {}
        result.prompt_tokens, result.completion_tokens = (
            usage.get("prompt_tokens", 0),
            usage.get("completion_tokens", 0),
        )
        result.finish_reason = choice.get("finish_reason") or "stop"
        return text

    async def stream(self, messages, params, result):
        import aiohttp

        try:
            async with self._client().post(
                self.base_url + "/chat/completions", json=self._body(messages, params, True)
            ) as r:
                if r.status != 200:
                    raise UpstreamError(f"upstream answered {r.status}: {(await r.text())[:200]}")
                async for raw in r.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    try:
                        chunk = json.loads(payload)
                    except ValueError:
                        raise UpstreamError(f"upstream {self.base_url} sent a malformed stream chunk") from None
                    if chunk.get("usage"):
                        result.prompt_tokens = chunk["usage"].get("prompt_tokens", 0)
                        result.completion_tokens = chunk["usage"].get("completion_tokens", 0)
                    for choice in chunk.get("choices") or []:
                        if choice.get("finish_reason"):
                            result.finish_reason = choice["finish_reason"]
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            yield text
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError(f"upstream {self.base_url} failed: {exc.__class__.__name__}") from None

    async def aclose(self):
        if self._session is not None and not self._session.closed:
            await self._session.close()


def load_upstream(
    spec: str,
    *,
    model_id: str | None = None,
    require_seal: str | None = None,
    timeout: float = 120.0,
    api_key: str | None = None,
) -> Upstream:
    if spec.startswith("openai:"):
        if require_seal:
            raise BackendError(
                "a remote upstream cannot be seal-checked: serve the sealed weights locally (hf:PATH)", source=spec
            )
        return OpenAIUpstream(spec, model_id=model_id, timeout=timeout, api_key=api_key)
    return LocalUpstream(spec, model_id=model_id, require_seal=require_seal)


def _default_id(s: ModelSpec) -> str:
    if s.kind == "embedded":
        return "smollm2-135m-instruct"
    return os.path.basename(os.path.normpath(s.target)) or s.target


def _query(opts: dict) -> str:
    return "&".join(f"{k}={v}" for k, v in opts.items())
