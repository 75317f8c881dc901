"""Pure ASGI middleware, run before routing, parsing and authentication: one request-body limit
for every route, and the browser-hardening headers of the web console."""

from __future__ import annotations

import json

from charter.gateway.errors import error_body


class _TooLarge(Exception):
    pass


async def _send_json(send, status: int, body: dict, extra_headers: list | None = None) -> None:
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"connection", b"close"),
    ] + (extra_headers or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with an OpenAI-style 413, on every route and
    before anything reads the body: a declared ``Content-Length`` over the limit is answered at
    once (the body is never read); a body without one (chunked) is counted as it streams and
    the request is cut off at the first byte over. Whatever the app had answered by then is
    replaced by the 413."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    def _too_large(self) -> dict:
        return error_body(f"request body over {self.limit} bytes", "invalid_request_error", None, "request_too_large")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = None
        for k, v in scope["headers"]:
            if k == b"content-length":
                declared = v
                break
        if declared is not None:
            if not declared.strip().isdigit():
                return await _send_json(
                    send,
                    400,
                    error_body(
                        "invalid Content-Length header", "invalid_request_error", None, "invalid_content_length"
                    ),
                )
            if int(declared) > self.limit:
                return await _send_json(send, 413, self._too_large())
            return await self.app(scope, receive, send)  # the server delivers no more than declared

        received, exceeded, started = 0, False, False

        async def counted_receive():
            nonlocal received, exceeded
            if exceeded:
                raise _TooLarge()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded_send(message):
            nonlocal started
            if exceeded:
                return  # the app's answer to a cut-off body (a parse error, say) is replaced
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _send_json(send, 413, self._too_large())


CONSOLE_PREFIX = "/console"


class ConsoleHeaders:
    """Security headers on every /console response: no framing, no MIME sniffing, no referrer
    leaving the site, and a content security policy that allows no script at all and only the
    console's own stylesheet (by hash) and same-origin form targets."""

    def __init__(self, app, csp: str):
        self.app = app
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"cache-control", b"no-store"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")):
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [h for h in self.headers if h[0] not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)
