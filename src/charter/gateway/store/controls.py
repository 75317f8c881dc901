"""Queries on ``controls``: the kill switch's suspensions, one row per scope."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine, Row

from charter.gateway.store.schema import controls, ready


def suspend(engine: Engine, scope: str, *, reason: str, since: str, incident_id: int | None) -> None:
    """Suspend ``scope`` (replacing an earlier suspension of it)."""
    with ready(engine).begin() as conn:
        conn.execute(controls.delete().where(controls.c.scope == scope))
        conn.execute(
            controls.insert().values(scope=scope, suspended=True, reason=reason, since=since, incident_id=incident_id)
        )


def resume(engine: Engine, scope: str) -> bool:
    """Lift the suspension of ``scope``; whether there was one."""
    with ready(engine).begin() as conn:
        return bool(conn.execute(controls.delete().where(controls.c.scope == scope)).rowcount)


def suspended(engine: Engine) -> list[Row]:
    """Every suspension in force."""
    with ready(engine).connect() as conn:
        return conn.execute(select(controls).where(controls.c.suspended.is_(True))).all()
