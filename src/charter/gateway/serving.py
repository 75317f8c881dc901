"""Running the gateway under uvicorn (``charter serve``): in this process, or in ``[server] workers``
processes that each build their own state from the validated configuration."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from charter.gateway.app import CONFIG_ENV, configure_json_logging, create_app
from charter.gateway.config import GatewayConfig
from charter.gateway.state import GatewayState


def serve(
    cfg: GatewayConfig,
    *,
    loading: Callable[[], Any] = contextlib.nullcontext,
    ready: Callable[[GatewayState], None] = lambda state: None,
) -> None:
    """Load the model and guard (inside ``loading()``, a context manager), report them to
    ``ready`` and serve until interrupted."""
    import uvicorn

    configure_json_logging()
    with loading():
        state = GatewayState(cfg)
    ready(state)
    common = dict(
        host=cfg.server.host, port=cfg.server.port, log_config=None, access_log=False, timeout_graceful_shutdown=5
    )
    if cfg.server.workers == 1:
        uvicorn.run(create_app(cfg, state=state), **common)
        return
    # Several processes: each worker builds its own state from the validated configuration; they
    # share the database (one audit chain, one kill switch) and the runtime key file.
    state.close()
    del state  # the parent only supervises: free its copy of the model and guard for the workers
    os.environ[CONFIG_ENV] = cfg.model_dump_json()
    uvicorn.run("charter.gateway.app:app_from_environment", factory=True, workers=cfg.server.workers, **common)
