"""Property: any single edit, deletion, insertion or reorder of entries or checkpoints, whatever
hashes the attacker recomputes and whatever checkpoints they delete and re-sign (with their own
key, or by having the real key sign the forgery), fails verification against trusted checkpoints."""

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from charter.audit import AuditLog, connect
from charter.audit.entries import CHECKPOINT_TYPE, GENESIS, Entry, _signed_body, body_digest, canonical_json
from charter.core.errors import VerificationError
from charter.provenance.dsse import sign_envelope
from charter.provenance.keys import key_id

N = 12
KEY = ec.generate_private_key(ec.SECP256R1())
ATTACKER = ec.generate_private_key(ec.SECP256R1())

_index = st.integers(0, N - 1)
_cp = st.integers(0, 2)
MUTATIONS = st.one_of(
    st.tuples(
        st.just("entry-edit"), _index, st.sampled_from(["body", "tenant", "kind", "time", "request_id", "empty"])
    ),
    st.tuples(st.just("entry-delete"), _index),
    st.tuples(st.just("entry-insert"), _index),
    st.tuples(st.just("entry-reorder"), _index, _index).filter(lambda m: m[1] != m[2]),
    st.tuples(st.just("cp-edit"), _cp),
    st.tuples(st.just("cp-delete"), _cp),
    st.tuples(st.just("cp-insert"), _cp),
    st.tuples(st.just("cp-reorder"), _cp, _cp).filter(lambda m: m[1] != m[2]),
)


@pytest.fixture
def engine(db_url):
    engine = connect(db_url)
    yield engine
    engine.dispose()


def _sql(engine, statement, **params):
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def _build(engine) -> tuple[AuditLog, list]:
    _sql(engine, "DELETE FROM audit_entries")
    _sql(engine, "DELETE FROM audit_checkpoints")
    log = AuditLog(engine)
    trusted = []
    for i in range(N):
        log.append(
            "chat.request", {"i": i, "text": f"message {i}"}, tenant="acme" if i % 2 else "globex", request_id=f"r{i}"
        )
        if i % 4 == 3:
            trusted.append(log.checkpoint(KEY).record())
    return log, trusted


def _edit(e: Entry, field: str) -> None:
    if field == "body":
        e.body = canonical_json({"i": e.seq, "text": "what the attacker wants on record"})
    elif field == "tenant":
        e.tenant = "victim"
    elif field == "kind":
        e.kind = "forged.kind"
    elif field == "time":
        e.time = "1999-01-01T00:00:00.000000Z"
    elif field == "request_id":
        e.request_id = "forged"
    else:  # content deleted, flagged as if purged
        e.body, e.purged = None, True


def _rewrite_entries(engine, rows: list[Entry], first: int, recompute: bool) -> None:
    """Renumber, optionally recompute every hash from ``first`` on, and store the whole table."""
    prev = rows[first - 1].entry_hash if first else GENESIS
    for i, e in enumerate(rows):
        e.seq = i
        if recompute and i >= first:
            e.prev_hash = prev
            if e.body:
                e.body_sha256 = body_digest(e.body)
            e.entry_hash = e.computed_hash() or e.entry_hash
            prev = e.entry_hash
    _sql(engine, "DELETE FROM audit_entries")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_entries (seq, time, tenant, kind, request_id, body, prev_hash, entry_hash, purged, "
                "body_sha256) VALUES (:seq, :time, :tenant, :kind, :request_id, :body, :prev_hash, :entry_hash, "
                ":purged, :body_sha256)"
            ),
            [e.to_dict() for e in rows],
        )


def _mutate_entries(engine, log: AuditLog, m: tuple, recompute: bool) -> int:
    rows = list(log.entries())
    op, i = m[0], m[1]
    if op == "entry-edit":
        _edit(rows[i], m[2])
    elif op == "entry-delete":
        del rows[i]
    elif op == "entry-insert":
        rows.insert(
            i,
            Entry(
                i,
                rows[i].time,
                "acme",
                "chat.request",
                "forged",
                canonical_json({"forged": True}),
                rows[i].prev_hash,
                rows[i].entry_hash,
            ),
        )
    else:
        j = m[2]
        rows[i], rows[j] = rows[j], rows[i]
        i = min(i, j)
    _rewrite_entries(engine, rows, i, recompute)
    return i


def _row_for(key) -> dict:
    pub = key.public_key()
    return {
        "key_id": key_id(pub),
        "public_key": pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
    }


def _mutate_checkpoints(engine, log: AuditLog, m: tuple) -> None:
    cps = log.checkpoints()
    op, c = m[0], cps[m[1]]
    if op == "cp-edit":  # its signed body changed and re-signed with the attacker's key
        env = sign_envelope(
            canonical_json(_signed_body(c) | {"time": "2000-01-01T00:00:00.000000Z"}).encode(),
            CHECKPOINT_TYPE,
            ATTACKER,
        )
        _sql(
            engine,
            "UPDATE audit_checkpoints SET envelope = :e, key_id = :key_id, public_key = :public_key WHERE id = :i",
            e=json.dumps(env),
            i=c.id,
            **_row_for(ATTACKER),
        )
    elif op == "cp-delete":
        _sql(engine, "DELETE FROM audit_checkpoints WHERE id = :i", i=c.id)
    elif op == "cp-insert":
        _sql(
            engine,
            "INSERT INTO audit_checkpoints (tree_size, root_hash, time, key_id, public_key, envelope) "
            "VALUES (:n, :r, :t, :k, :p, :e)",
            n=c.tree_size,
            r=c.root_hash,
            t=c.time,
            k=c.key_id,
            p=c.public_key,
            e=json.dumps(c.envelope),
        )
    else:
        d = cps[m[2]]
        _sql(engine, "UPDATE audit_checkpoints SET envelope = :e WHERE id = :i", e=json.dumps(d.envelope), i=c.id)
        _sql(engine, "UPDATE audit_checkpoints SET envelope = :e WHERE id = :i", e=json.dumps(c.envelope), i=d.id)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=MUTATIONS, recompute=st.booleans(), resign=st.sampled_from(["none", "attacker", "real"]))
def test_any_single_tampering_fails_against_trusted_checkpoints(engine, mutation, recompute, resign):
    log, trusted = _build(engine)
    assert log.verify([KEY.public_key()], trusted=trusted).ok
    if mutation[0].startswith("entry"):
        first = _mutate_entries(engine, log, mutation, recompute)
    else:
        _mutate_checkpoints(engine, log, mutation)
        first = min(c.tree_size for c in log.checkpoints()) if resign != "none" else None
    if resign != "none" and first is not None:
        # Re-anchor: drop the checkpoints the change breaks, sign the forged log afresh.
        _sql(engine, "DELETE FROM audit_checkpoints WHERE tree_size > :n", n=first)
        try:
            AuditLog(engine).checkpoint(ATTACKER if resign == "attacker" else KEY)
        except VerificationError:
            pass  # the gateway refused to sign a log that no longer extends its last checkpoint
    rep = AuditLog(engine).verify([KEY.public_key()], trusted=trusted)
    assert not rep.ok, (mutation, recompute, resign)
