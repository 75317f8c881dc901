"""Database URLs for tests: a fresh SQLite file, and a fresh PostgreSQL database on the local
server (127.0.0.1:5432, as on our machines and in CI) — skipped only where none answers."""

from __future__ import annotations

import os
import uuid

import pytest

PG_ADMIN = os.environ.get("CHARTER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001
        return False


def fresh_pg_database() -> tuple[str, callable]:
    import psycopg

    name = "charter_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]

    def drop():
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    if not _pg_available():
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}")
    url, drop = fresh_pg_database()
    yield url
    drop()
