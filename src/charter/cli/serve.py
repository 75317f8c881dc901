"""``charter serve``: the governed OpenAI-compatible gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, err_console, handle_errors
from charter.cli._gateway import CONFIG_OPTION as _CONFIG
from charter.cli._gateway import DATABASE_OPTION as _DATABASE
from charter.cli._gateway import gateway_config as _config


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


@handle_errors
def serve(
    config: Optional[Path] = _CONFIG,
    host: Optional[str] = typer.Option(None, "--host", help="Bind address (overrides [server] host)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (overrides [server] port)."),
    model: Optional[str] = typer.Option(None, "--model", help="Upstream model spec (overrides [upstream] model)."),
    require_seal: Optional[Path] = typer.Option(
        None, "--require-seal", help="Public key: refuse to serve a model whose seal does not verify."
    ),
    database: Optional[str] = _DATABASE,
    guard: Optional[Path] = typer.Option(None, "--guard", help="Guard directory (overrides [guard] path)."),
    workers: Optional[int] = typer.Option(
        None, "--workers", help="Gateway processes on this port (overrides [server] workers)."
    ),
) -> None:
    """Serve the OpenAI-compatible, guarded, audited gateway (FastAPI + uvicorn)."""
    from charter.gateway.serving import serve as serve_gateway

    cfg = _config(
        config,
        database,
        **{
            "server.host": host,
            "server.port": port,
            "upstream.model": model,
            "upstream.require_seal": str(require_seal.resolve()) if require_seal else None,
            "guard.path": str(guard.resolve()) if guard else None,
            "server.workers": workers,
        },
    )

    def ready(state) -> None:
        a = state.attestation
        err_console.print(
            f"serving {state.upstream.model_id} on http://{cfg.server.host}:{cfg.server.port}/v1 "
            f"({'sealed, verified' if a.verified else 'sealed, not verified' if a.sealed else 'unsealed'}; "
            f"guard {'on' if state.guard is not None else 'off'}; audit {cfg.server.database})",
            highlight=False,
        )

    loading = f"loading {cfg.upstream.model}" + (" and the guard" if cfg.guard.path else "")
    serve_gateway(cfg, loading=lambda: console.status(loading), ready=ready)


# -- admin ----------------------------------------------------------------------------------------
