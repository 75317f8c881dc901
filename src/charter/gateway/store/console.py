"""Queries on ``console_sessions``: web-console logins, by the hash of their cookie."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine, Row

from charter.gateway.store.schema import console_sessions, ready, tenants


def admin_login(engine: Engine, token_hash: str) -> Row | None:
    """``(tenant, expires)`` of the login, when its tenant still exists and is an admin."""
    cs, t = console_sessions, tenants
    with ready(engine).connect() as conn:
        return conn.execute(
            select(cs.c.tenant, cs.c.expires)
            .select_from(cs.join(t, t.c.name == cs.c.tenant))
            .where(cs.c.token_hash == token_hash, t.c.admin.is_(True))
        ).first()


def start(engine: Engine, token_hash: str, tenant: str, *, expires: float, now: float) -> None:
    """Record a login (and drop the logins expired by ``now``)."""
    with ready(engine).begin() as conn:
        conn.execute(console_sessions.delete().where(console_sessions.c.expires < now))
        conn.execute(console_sessions.insert().values(token_hash=token_hash, tenant=tenant, expires=expires))


def end(engine: Engine, token_hash: str) -> None:
    with ready(engine).begin() as conn:
        conn.execute(console_sessions.delete().where(console_sessions.c.token_hash == token_hash))


def end_tenant_sessions(conn: Connection, tenant: str) -> int:
    """End every login of ``tenant`` inside the caller's transaction; how many there were."""
    return conn.execute(console_sessions.delete().where(console_sessions.c.tenant == tenant)).rowcount
