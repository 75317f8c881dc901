"""Queries on ``sessions``: end users' sessions, for disclosures and dependency safeguards.

``use`` runs on every request of a profiled deployment, so its statements (SQLAlchemy Core,
compiled once per dialect) run on the driver's own connection, like audit appends: the statement
layer would cost most of a millisecond."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Engine

from charter.audit import db
from charter.gateway.store.schema import ready, sessions


@dataclass
class SessionUse:
    """A session's row, locked for one request: ``new`` when this request created it. The caller
    sets the times (ISO strings) it keeps; they are written back when the block ends."""

    new: bool
    last_seen: str
    continuous_since: str
    disclosed_at: str | None
    handed_off_at: str | None


@contextmanager
def use(engine: Engine, key: str, now: str) -> Iterator[SessionUse]:
    """The row of session ``key`` (created at ``now`` when new), locked until the block ends and
    then written back, in one transaction."""
    insert, lock, write = _statements(ready(engine).dialect)
    with db.driver_transaction(engine, exclusive=True) as (cur, _):
        cur.execute(*insert({"key": key, "now": now}))
        new = cur.rowcount == 1
        cur.execute(*lock({"key": key}))
        row = SessionUse(new, *cur.fetchone())
        yield row
        cur.execute(
            *write(
                {
                    "key": key,
                    "last_seen": row.last_seen,
                    "continuous_since": row.continuous_since,
                    "disclosed_at": row.disclosed_at,
                    "handed_off_at": row.handed_off_at,
                }
            )
        )


def mark_handoff(engine: Engine, key: str, at: str) -> None:
    with ready(engine).begin() as conn:
        conn.execute(sessions.update().where(sessions.c.key == key).values(handed_off_at=at))


_COMPILED: dict[tuple, tuple] = {}


def _statements(dialect: Dialect) -> tuple:
    """(insert if new, select for update, write back) for ``dialect``, each a function of the
    parameters that returns the driver's ``(sql, parameters)``."""
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    if key not in _COMPILED:
        _COMPILED[key] = _compile(dialect)
    return _COMPILED[key]


def _compile(dialect: Dialect) -> tuple:
    s = sessions
    insert = sqlite.insert if dialect.name == "sqlite" else postgresql.insert
    now = bindparam("now")
    new = (
        insert(s)
        .values(key=bindparam("key"), started=now, last_seen=now, continuous_since=now)
        .on_conflict_do_nothing(index_elements=[s.c.key])
    )
    lock = (
        select(s.c.last_seen, s.c.continuous_since, s.c.disclosed_at, s.c.handed_off_at)
        .where(s.c.key == bindparam("key"))
        .with_for_update()  # SQLite: nothing (the transaction holds the write lock already)
    )
    write = (
        update(s)
        .where(s.c.key == bindparam("key"))
        .values(
            last_seen=bindparam("last_seen"),
            continuous_since=bindparam("continuous_since"),
            disclosed_at=bindparam("disclosed_at"),
            handed_off_at=bindparam("handed_off_at"),
        )
    )
    return tuple(_driver(stmt, dialect) for stmt in (new, lock, write))


def _driver(stmt, dialect: Dialect):
    compiled = stmt.compile(dialect=dialect)
    sql, order = str(compiled), compiled.positiontup if compiled.positional else None

    def bind(params: dict) -> tuple:
        return sql, (tuple(params[k] for k in order) if order is not None else params)

    return bind
