"""What the gateway command groups share: the gateway.toml and database options and how they resolve."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="gateway.toml (default: ./gateway.toml when present).")
DATABASE_OPTION = typer.Option(
    None, "--database", help="Database URL, overriding the config (sqlite:///F or postgresql://H/DB)."
)


def gateway_config(config: Optional[Path], database: Optional[str] = None, **overrides):
    from charter.gateway.config import load_gateway_config

    if config is None and Path("gateway.toml").is_file():
        config = Path("gateway.toml")
    return load_gateway_config(config, **({"server.database": database} if database else {}), **overrides)


def open_db(config: Optional[Path], database: Optional[str]):
    from charter.audit import AuditLog, connect

    cfg = gateway_config(config, database)
    engine = connect(cfg.path(cfg.server.database), durability=cfg.server.durability)
    return cfg, engine, AuditLog(engine)


def runtime_key(cfg):
    from charter.provenance.keys import load_runtime_key

    return load_runtime_key(cfg.runtime_key_path())


def public_keys(paths: list[Path]):
    from charter.provenance.keys import load_public_key

    return [load_public_key(p) for p in paths] if paths else None


def audit_db(config: Optional[Path], database: Optional[str]):
    """As open_db, with the log as the gateway configures it (witness, earlier runtime keys): checkpoints
    signed by CLI commands are witnessed too."""
    from charter.gateway.state import audit_log

    cfg, engine, _ = open_db(config, database)
    return cfg, engine, audit_log(cfg, engine)
