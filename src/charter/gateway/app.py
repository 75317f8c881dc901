"""The FastAPI application: routers per concern, the state built in the lifespan."""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from charter.gateway import errors
from charter.gateway.config import GatewayConfig
from charter.gateway.middleware import BodyLimit, ConsoleHeaders
from charter.gateway.routers import admin, attestation, audit, chat, console
from charter.gateway.state import GatewayState


def create_app(config: GatewayConfig, *, state: GatewayState | None = None, upstream=None, guard=None) -> FastAPI:
    """``state``/``upstream``/``guard`` may be handed in (tests, benchmarks); otherwise they are
    built from ``config`` at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        st = state or GatewayState(config, upstream=upstream, guard=guard)
        app.state.gateway = st
        st.start_background()
        try:
            yield
        finally:
            await st.stop_background()

    app = FastAPI(
        title="Charter gateway",
        version="1",
        lifespan=lifespan,
        description="OpenAI-compatible serving under a constitution: guard, audit log, kill switch, attestation.",
    )
    errors.install(app)
    for r in (chat.router, admin.router, audit.router, attestation.router, console.router):
        app.include_router(r)
    # Outermost last: the body limit runs before routing, parsing and authentication.
    app.add_middleware(ConsoleHeaders, csp=console.CSP)
    app.add_middleware(BodyLimit, limit=config.server.max_body_bytes)
    return app


CONFIG_ENV = "CHARTER_GATEWAY_CONFIG_JSON"


def app_from_environment() -> FastAPI:
    """The app factory each uvicorn worker process calls (``[server] workers > 1``): the parent
    validated the configuration and passes it as JSON in the environment."""
    import os

    configure_json_logging()
    return create_app(GatewayConfig.model_validate_json(os.environ[CONFIG_ENV]))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a message that is itself JSON is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        base = {"time": when, "level": record.levelname, "logger": record.name}
        msg = record.getMessage()
        try:
            extra = json.loads(msg)
            base |= extra if isinstance(extra, dict) else {"message": msg}
        except ValueError:
            base["message"] = msg
        if record.exc_info:
            base["exc"] = self.formatException(record.exc_info)
        return json.dumps(base)


def configure_json_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    for name in ("charter.gateway", "charter.gateway.access", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level)
        lg.propagate = False
