"""Queries on ``incidents``, and the audit-log counts that trip rules compare with their thresholds."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from charter.audit import db
from charter.gateway.store.schema import incidents, ready


def open_incident(engine: Engine, *, opened: str, scope: str, reason: str, trigger: dict) -> int:
    with ready(engine).begin() as conn:
        iid = conn.execute(
            incidents.insert().values(
                opened=opened, status="open", scope=scope, reason=reason, trigger=json.dumps(trigger)
            )
        ).inserted_primary_key[0]
    return int(iid)


def close_incident(engine: Engine, iid: int, *, closed: str) -> None:
    with ready(engine).begin() as conn:
        conn.execute(incidents.update().where(incidents.c.id == iid).values(status="closed", closed=closed))


def all_incidents(engine: Engine) -> list[dict]:
    """Every incident, oldest first."""
    with ready(engine).connect() as conn:
        return [_incident(r) for r in conn.execute(select(incidents).order_by(incidents.c.id))]


def get(engine: Engine, iid: int) -> dict | None:
    with ready(engine).connect() as conn:
        r = conn.execute(select(incidents).where(incidents.c.id == iid)).first()
    return None if r is None else _incident(r)


def _incident(r) -> dict:
    d = dict(r._mapping)
    d["trigger"] = json.loads(d["trigger"]) if d.get("trigger") else None
    return d


def count_entries(engine: Engine, kind: str, since: str, tenant: str | None = None, *, per_request: bool) -> int:
    """Audit entries of ``kind`` since ``since`` (of ``tenant``, when given); with ``per_request``,
    distinct (tenant, request) pairs instead of entries."""
    e = db.entries
    where = [e.c.kind == kind, e.c.time >= since] + ([e.c.tenant == tenant] if tenant is not None else [])
    if per_request:
        distinct = select(e.c.tenant, e.c.request_id).where(*where).distinct().subquery()
        q = select(func.count()).select_from(distinct)
    else:
        q = select(func.count()).select_from(e).where(*where)
    with engine.connect() as conn:
        return int(conn.execute(q).scalar() or 0)
