"""The gateway's tables, in the database the audit log lives in (SQLite or PostgreSQL): tenants
(API-key hashes), controls (the kill switch, shared by every gateway process on the database),
incidents, end-user sessions (disclosures, dependency safeguards) and web-console logins.

``ready(engine)`` creates what a database lacks, once per engine: every store function calls it,
so an engine opened by ``charter.audit.connect`` alone (the CLI's) works as well as one opened
by ``connect`` here."""

from __future__ import annotations

import threading
import weakref

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text
from sqlalchemy.engine import Engine

from charter.audit import db
from charter.core.errors import InputError

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 of the API key
    Column("rate_limit_rpm", Integer, nullable=False, default=60),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created", String(40), nullable=False),
    Column("source", String(20)),  # "config": declared in gateway.toml [[tenants]]; NULL: charter admin add-tenant
)

controls = Table(
    "controls",
    metadata,
    Column("scope", String(200), primary_key=True),  # "*" = every model, else a model id
    Column("suspended", Boolean, nullable=False),
    Column("reason", Text),
    Column("since", String(40)),
    Column("incident_id", Integer),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("opened", String(40), nullable=False),
    Column("closed", String(40)),
    Column("status", String(20), nullable=False),
    Column("scope", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("trigger", Text),  # JSON: rule, count, window, request ids
)

sessions = Table(
    "sessions",
    metadata,  # end-user sessions for disclosures and dependency safeguards
    Column("key", String(500), primary_key=True),  # tenant + session id
    Column("started", String(40), nullable=False),
    Column("last_seen", String(40), nullable=False),
    Column("continuous_since", String(40), nullable=False),
    Column("disclosed_at", String(40)),
    Column("handed_off_at", String(40)),
)

console_sessions = Table(
    "console_sessions",
    metadata,  # web-console logins, shared by every gateway process
    Column("token_hash", String(64), primary_key=True),  # sha256 of the cookie value
    Column("tenant", String(200), nullable=False),
    Column("expires", Float, nullable=False),  # unix time
)

# Columns added after a table's first release (see charter.audit.db.add_missing_columns).
LATER_COLUMNS = [("tenants", "source", "VARCHAR(20)")]

_ready: weakref.WeakSet[Engine] = weakref.WeakSet()
_ready_lock = threading.Lock()


def ready(engine: Engine) -> Engine:
    """The engine, its database holding the gateway's tables (created once per engine and process;
    existing tables get the columns added since their first release)."""
    if engine in _ready:
        return engine
    with _ready_lock:
        if engine not in _ready:
            metadata.create_all(engine)
            db.add_missing_columns(engine, LATER_COLUMNS)
            _ready.add(engine)
    return engine


def connect(url: str, *, durability: str = "normal") -> Engine:
    """``charter.audit.connect`` with the gateway's tables created too."""
    engine = db.connect(url, durability=durability)
    try:
        return ready(engine)
    except Exception as exc:  # driver errors differ per backend
        engine.dispose()
        raise InputError(f"cannot create the gateway's tables: {str(exc).splitlines()[0]}", source="database") from None
