"""The audit log's database: one SQLAlchemy Core schema on SQLite (embedded default) or PostgreSQL.

Tables: the audit log, its signed checkpoints and the plain table the append benchmark compares
against. Packages above keep their own tables in the same database (the gateway's: tenants,
controls, incidents, sessions, console logins, in ``charter.gateway.store``) and create them with
``metadata.create_all`` and ``add_missing_columns`` on the engine ``connect`` returns.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine

from charter.core.errors import InputError

metadata = MetaData()

entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", String(40), nullable=False, index=True),
    Column("tenant", String(200), index=True),
    Column("kind", String(64), nullable=False),
    Column("request_id", String(100), index=True),
    Column("body", Text),  # canonical JSON; NULL once purged by retention
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),  # RFC 6962 leaf hash of the canonical entry
    Column("purged", Boolean, nullable=False, default=False),
    # sha256 of the body, kept at append time: the leaf hash covers the header plus this digest,
    # so a purged entry's hash can still be recomputed (NULL in entries of the earlier forms).
    Column("body_sha256", String(64)),
)

checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", String(64), nullable=False),
    Column("time", String(40), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("envelope", Text, nullable=False),  # DSSE over the checkpoint body
)

# The plain table the append benchmark compares against (same columns, no chain).
plain_entries = Table(
    "audit_plain",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("time", String(40), nullable=False),
    Column("tenant", String(200)),
    Column("kind", String(64), nullable=False),
    Column("request_id", String(100)),
    Column("body", Text),
)


def connect(url: str, *, durability: str = "normal") -> Engine:
    """An engine with the schema created. SQLite: WAL, a busy timeout, and BEGIN IMMEDIATE so that
    writers from several processes queue instead of failing; ``durability="full"`` fsyncs each
    commit (WAL + NORMAL already survives a killed process, not a power cut)."""
    if "://" not in url:
        raise InputError(
            f"not a database URL: {url!r} (e.g. sqlite:///audit.db or postgresql://host/db)", source="database"
        )
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("postgresql+psycopg") and importlib.util.find_spec("psycopg") is None:
        raise InputError(
            "a PostgreSQL database needs the postgres extra: pip install 'charter[postgres]'", source="database"
        )
    try:
        if url.startswith("sqlite"):
            created = _create_private_sqlite_file(url)
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            _sqlite_pragmas(engine, durability)
        else:
            created = None
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        metadata.create_all(engine)
        add_missing_columns(engine, LATER_COLUMNS)
        if created:
            _private_sidecars(created)
    except Exception as exc:  # driver and connection errors differ per backend
        raise InputError(
            f"cannot open database {_redact(url)}: {str(exc).splitlines()[0]}", source="database"
        ) from None
    return engine


def sqlite_file(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    return None if not name or name == ":memory:" or name.startswith("file:") else name


def _create_private_sqlite_file(url: str) -> str | None:
    """A new SQLite database file is created 0600 before SQLite opens it (SQLite gives its -wal and
    -shm files the database file's permissions). An existing file keeps the mode its owner chose.
    Returns the path when this call created the file."""
    from charter.provenance.keys import create_private_file

    path = sqlite_file(url)
    return path if path is not None and create_private_file(path, b"") else None


def _private_sidecars(path: str) -> None:
    for suffix in ("-wal", "-shm", "-journal"):
        side = path + suffix
        try:
            if os.stat(side).st_mode & 0o077:
                os.chmod(side, 0o600)
        except FileNotFoundError:
            pass


# Columns added after a table's first release: (table, column, DDL type). create_all makes new
# tables whole; existing ones get the column from add_missing_columns.
LATER_COLUMNS = [("audit_entries", "body_sha256", "VARCHAR(64)")]


def add_missing_columns(engine: Engine, columns: list[tuple[str, str, str]]) -> None:
    """Add each ``(table, column, DDL type)`` an existing table lacks (idempotent, and safe when
    processes race)."""
    from sqlalchemy import inspect, text

    for table, column, ddl in columns:
        if column in {c["name"] for c in inspect(engine).get_columns(table)}:
            continue
        try:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}"))
        except Exception:  # noqa: BLE001 - another process added it first
            if column not in {c["name"] for c in inspect(engine).get_columns(table)}:
                raise


def _sqlite_pragmas(engine: Engine, durability: str) -> None:
    sync = {"normal": "NORMAL", "full": "FULL"}[durability]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sync}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def driver_transaction(engine: Engine, *, exclusive: bool = False):
    """One transaction on the driver's own connection (from SQLAlchemy's pool), for hot paths
    where the statement layer would cost most of a millisecond. Yields ``(cursor, placeholder)``;
    commits on success, rolls back on error. ``exclusive`` takes SQLite's write lock up front
    (BEGIN IMMEDIATE), so read-then-write transactions from several processes queue, not fail."""
    sqlite = is_sqlite(engine)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if sqlite:
            cur.execute("BEGIN IMMEDIATE" if exclusive else "BEGIN")
        yield cur, ("?" if sqlite else "%s")
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()  # back to the pool


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _redact(url: str) -> str:
    head, sep, tail = url.partition("@")
    if sep and ":" in head.split("//", 1)[-1]:
        scheme, _, cred = head.partition("//")
        return f"{scheme}//{cred.split(':')[0]}:***@{tail}"
    return url
