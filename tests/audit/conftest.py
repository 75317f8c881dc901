"""Shared audit-log fixtures: a fresh log on each database (SQLite and PostgreSQL) and a signing key."""

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from charter.audit import AuditLog, connect


@pytest.fixture
def log(db_url):
    engine = connect(db_url)
    yield AuditLog(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP256R1())
