"""The gateway's tables live in ``charter.gateway.store``: created on a fresh database (also on an
engine opened by ``charter.audit.connect`` alone, as the CLI does), added to on an older one,
and the same queries on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from charter.audit import connect as audit_connect
from charter.audit import db as audit_db
from charter.gateway.store import connect, console, controls, incidents, schema, sessions, tenants

GATEWAY_TABLES = {"tenants", "controls", "incidents", "sessions", "console_sessions"}


def test_the_audit_schema_holds_no_gateway_table():
    assert not GATEWAY_TABLES & set(audit_db.metadata.tables)
    assert GATEWAY_TABLES == set(schema.metadata.tables)


def test_an_audit_engine_gets_the_gateway_tables_on_first_use(db_url):
    engine = audit_connect(db_url)
    assert tenants.insert(engine, "acme", "aa" * 32, admin=True, rate_limit_rpm=60, created="t0")
    assert not tenants.insert(engine, "acme", "bb" * 32, admin=False, rate_limit_rpm=60, created="t1")
    assert GATEWAY_TABLES <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_an_older_tenants_table_gets_the_source_column(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sa.create_engine(url)
    with old.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE tenants (name VARCHAR(200) PRIMARY KEY, key_hash VARCHAR(64) NOT NULL UNIQUE, "
            "rate_limit_rpm INTEGER NOT NULL, admin BOOLEAN NOT NULL, created VARCHAR(40) NOT NULL)"
        )
        conn.exec_driver_sql("INSERT INTO tenants VALUES ('acme', '%s', 60, 1, 't0')" % ("aa" * 32))
    old.dispose()
    engine = connect(url)
    assert "source" in {c["name"] for c in sa.inspect(engine).get_columns("tenants")}
    assert tenants.by_key_hash(engine, "aa" * 32).name == "acme"
    assert tenants.names_from(engine, "config") == []
    engine.dispose()


def test_tenants_console_and_controls(db_url):
    engine = connect(db_url)
    tenants.replace(engine, "root", "aa" * 32, admin=True, rate_limit_rpm=60, source="config", now="t0")
    console.start(engine, "cc" * 32, "root", expires=4e9, now=1.0)
    console.start(engine, "dd" * 32, "root", expires=2.0, now=1.0)
    assert console.admin_login(engine, "cc" * 32).tenant == "root"
    console.start(engine, "ee" * 32, "root", expires=4e9, now=3.0)  # drops the expired login
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.console_sessions)).scalar() == 2
    console.end(engine, "ee" * 32)
    # A withdrawn admin flag ends the tenant's logins; the creation time stays.
    tenants.replace(engine, "root", "aa" * 32, admin=False, rate_limit_rpm=60, source="config", now="t1")
    assert console.admin_login(engine, "cc" * 32) is None
    assert tenants.by_key_hash(engine, "aa" * 32).created == "t0"
    assert tenants.names_from(engine, "config") == ["root"]
    row, ended = tenants.delete(engine, "root")
    assert row.name == "root" and ended == 0 and tenants.delete(engine, "root") is None

    controls.suspend(engine, "*", reason="drill", since="t2", incident_id=None)
    controls.suspend(engine, "*", reason="again", since="t3", incident_id=7)
    assert [(r.scope, r.reason, r.incident_id) for r in controls.suspended(engine)] == [("*", "again", 7)]
    assert controls.resume(engine, "*") and not controls.resume(engine, "*")
    assert controls.suspended(engine) == []
    engine.dispose()


def test_incidents(db_url):
    engine = connect(db_url)
    iid = incidents.open_incident(engine, opened="t0", scope="*", reason="r", trigger={"count": 3})
    assert incidents.get(engine, iid) == {
        "id": iid,
        "opened": "t0",
        "closed": None,
        "status": "open",
        "scope": "*",
        "reason": "r",
        "trigger": {"count": 3},
    }
    incidents.close_incident(engine, iid, closed="t1")
    assert [(i["id"], i["status"], i["closed"]) for i in incidents.all_incidents(engine)] == [(iid, "closed", "t1")]
    assert incidents.get(engine, iid + 1) is None
    engine.dispose()


def test_a_session_row_is_created_locked_and_written_back(db_url):
    engine = connect(db_url)
    with sessions.use(engine, "acme:s1", "t0") as row:
        assert (row.new, row.last_seen, row.continuous_since, row.disclosed_at) == (True, "t0", "t0", None)
        row.last_seen, row.disclosed_at = "t1", "t1"
    with sessions.use(engine, "acme:s1", "t2") as row:
        assert (row.new, row.last_seen, row.continuous_since, row.disclosed_at) == (False, "t1", "t0", "t1")
        assert row.handed_off_at is None
    sessions.mark_handoff(engine, "acme:s1", "t3")
    with sessions.use(engine, "acme:s1", "t4") as row:
        assert row.handed_off_at == "t3" and row.last_seen == "t1"  # the block above wrote t1 back
    engine.dispose()
