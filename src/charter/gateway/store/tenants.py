"""Queries on ``tenants``: keys are stored as SHA-256 hashes only."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine, Row

from charter.gateway.store import console
from charter.gateway.store.schema import ready, tenants


def insert(engine: Engine, name: str, key_hash: str, *, admin: bool, rate_limit_rpm: int, created: str) -> bool:
    """Add a tenant; False (and nothing written) when the name is taken."""
    with ready(engine).begin() as conn:
        if conn.execute(select(tenants.c.name).where(tenants.c.name == name)).first():
            return False
        conn.execute(
            tenants.insert().values(
                name=name, key_hash=key_hash, rate_limit_rpm=rate_limit_rpm, admin=admin, created=created
            )
        )
    return True


def replace(
    engine: Engine, name: str, key_hash: str, *, admin: bool, rate_limit_rpm: int, source: str, now: str
) -> None:
    """Write the tenant whole (keeping its creation time). A changed key or a withdrawn admin flag
    ends the tenant's console sessions, in the same transaction."""
    with ready(engine).begin() as conn:
        old = conn.execute(select(tenants).where(tenants.c.name == name)).first()
        if old is not None and (old.key_hash != key_hash or (bool(old.admin) and not admin)):
            console.end_tenant_sessions(conn, name)
        conn.execute(tenants.delete().where(tenants.c.name == name))
        conn.execute(
            tenants.insert().values(
                name=name,
                key_hash=key_hash,
                rate_limit_rpm=rate_limit_rpm,
                admin=admin,
                created=old.created if old is not None else now,
                source=source,
            )
        )


def delete(engine: Engine, name: str) -> tuple[Row, int] | None:
    """Delete a tenant and its console sessions: (its row, sessions ended), None when there is none."""
    with ready(engine).begin() as conn:
        row = conn.execute(select(tenants).where(tenants.c.name == name)).first()
        if row is None:
            return None
        conn.execute(tenants.delete().where(tenants.c.name == name))
        return row, console.end_tenant_sessions(conn, name)


def names_from(engine: Engine, source: str) -> list[str]:
    """The tenants written with ``source``."""
    with ready(engine).connect() as conn:
        return [r.name for r in conn.execute(select(tenants.c.name).where(tenants.c.source == source))]


def by_key_hash(engine: Engine, key_hash: str) -> Row | None:
    with ready(engine).connect() as conn:
        return conn.execute(select(tenants).where(tenants.c.key_hash == key_hash)).first()
