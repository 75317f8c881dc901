import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from charter.audit import verify_export
from charter.core.errors import VerificationError


def _fill(log, n, tenant_of=lambda i: "acme" if i % 2 == 0 else "globex"):
    for i in range(n):
        log.append("chat.request", {"i": i, "text": f"message {i}"}, tenant=tenant_of(i), request_id=f"r{i}")


def _sql(log, statement, **params):
    with log.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_append_chains_and_verifies(log, key):
    _fill(log, 10)
    log.checkpoint(key)
    _fill(log, 3)
    rep = log.verify([key.public_key()])
    assert rep.ok and rep.entries == 13 and rep.checkpoints == 1 and rep.unanchored == 3
    entries = list(log.entries())
    assert [e.seq for e in entries] == list(range(13))
    assert all(b.prev_hash == a.entry_hash for a, b in zip(entries, entries[1:]))


@pytest.mark.parametrize("attack", ["modify", "delete", "insert", "reorder", "rewrite-with-new-hashes", "truncate"])
def test_tampering_is_detected_and_the_first_bad_entry_named(log, key, attack):
    _fill(log, 12)
    log.checkpoint(key)
    if attack == "modify":
        _sql(log, "UPDATE audit_entries SET body = :b WHERE seq = 5", b=json.dumps({"i": 5, "text": "edited"}))
        want = 5
    elif attack == "delete":
        _sql(log, "DELETE FROM audit_entries WHERE seq = 4")
        want = 4
    elif attack == "insert":
        # Shift entries 6.. up by one and put a forged entry at 6 that links to entry 5.
        _sql(log, "UPDATE audit_entries SET seq = seq + 100 WHERE seq >= 6")
        _sql(log, "UPDATE audit_entries SET seq = seq - 99 WHERE seq >= 100")
        e5 = [e for e in log.entries() if e.seq == 5][0]
        from charter.audit.entries import Entry

        forged = Entry(6, e5.time, "acme", "chat.request", "forged", json.dumps({"forged": True}), e5.entry_hash, "")
        forged.entry_hash = forged.computed_hash()
        _sql(
            log,
            "INSERT INTO audit_entries (seq, time, tenant, kind, request_id, body, prev_hash, entry_hash, purged) "
            "VALUES (6, :t, 'acme', 'chat.request', 'forged', :b, :p, :h, false)",
            t=forged.time,
            b=forged.body,
            p=forged.prev_hash,
            h=forged.entry_hash,
        )
        want = 7  # the forged entry itself is well formed; its successor no longer links
    elif attack == "reorder":
        a, b = [e for e in log.entries() if e.seq in (3, 8)]
        _sql(log, "UPDATE audit_entries SET body = :b WHERE seq = 3", b=b.body)
        _sql(log, "UPDATE audit_entries SET body = :b WHERE seq = 8", b=a.body)
        want = 3
    elif attack == "rewrite-with-new-hashes":
        # An attacker with write access recomputes the whole chain from entry 2 on: only the
        # signed checkpoint catches it.
        from charter.audit.entries import body_digest

        rows = list(log.entries())
        prev = rows[1].entry_hash
        for e in rows[2:]:
            e.body = json.dumps({"i": e.seq, "text": "rewritten"}) if e.seq == 2 else e.body
            e.body_sha256 = body_digest(e.body)
            e.prev_hash = prev
            e.entry_hash = e.computed_hash()
            prev = e.entry_hash
            _sql(
                log,
                "UPDATE audit_entries SET body = :b, body_sha256 = :d, prev_hash = :p, entry_hash = :h WHERE seq = :s",
                b=e.body,
                d=e.body_sha256,
                p=e.prev_hash,
                h=e.entry_hash,
                s=e.seq,
            )
        want = 0
    else:
        _sql(log, "DELETE FROM audit_entries WHERE seq >= 9")
        want = 9
    rep = log.verify([key.public_key()])
    assert not rep.ok
    assert rep.first_bad == want, rep.problem


def test_checkpoint_signed_by_another_key_is_rejected_when_pinned(log, key):
    _fill(log, 4)
    other = ec.generate_private_key(ec.SECP256R1())
    log.checkpoint(other)
    assert not log.verify([key.public_key()]).ok
    assert log.verify([other.public_key()]).ok


def test_concurrent_appenders_keep_one_chain(log):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: log.append("x", {"i": i}, tenant="t"), range(80)))
    rep = log.verify()
    assert rep.ok and rep.entries == 80


def test_purge_drops_content_but_keeps_the_log_verifiable(log, key):
    _fill(log, 6)
    cutoff = list(log.entries())[-1].time
    _fill(log, 2)
    n = log.purge(cutoff, key)
    assert n == 5
    rows = list(log.entries())
    assert all(e.body is None for e in rows[:5]) and rows[5].body is not None
    rep = log.verify([key.public_key()])
    assert rep.ok and rep.purged == 5
    # A purged entry's stored hash is still bound by the checkpoint.
    _sql(log, "UPDATE audit_entries SET entry_hash = :h WHERE seq = 1", h="ab" * 32)
    assert not log.verify([key.public_key()]).ok


def test_export_proves_inclusion_offline_and_catches_edits(log, key, tmp_path):
    _fill(log, 9)
    r = log.export(tmp_path / "acme.jsonl", key, tenant="acme")
    assert r["entries"] == 5
    ok = verify_export(tmp_path / "acme.jsonl", key.public_key())
    assert ok["entries"] == 5 and ok["tree_size"] == 9
    lines = (tmp_path / "acme.jsonl").read_text().splitlines()
    rec = json.loads(lines[2])
    rec["body"] = rec["body"].replace("message", "massage")
    lines[2] = json.dumps(rec)
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(VerificationError, match=":3: entry 2 was modified"):
        verify_export(tmp_path / "bad.jsonl", key.public_key())


def test_time_window_and_tenant_filters(log):
    _fill(log, 6)
    times = [e.time for e in log.entries()]
    got = [e.seq for e in log.entries(tenant="globex", since=times[2], until=times[5])]
    assert got == [3]


def test_group_commit_writer_batches_concurrent_appends_into_one_chain(log):
    from concurrent.futures import ThreadPoolExecutor

    from charter.audit import GroupCommitWriter

    writer = GroupCommitWriter(log)
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(
                pool.map(
                    lambda i: writer.append_many([("a", {"i": i}, "t", f"r{i}"), ("b", {"i": i}, "t", f"r{i}")]),
                    range(100),
                )
            )
    finally:
        writer.close()
    seqs = [e.seq for r in results for e in r]
    assert sorted(seqs) == list(range(200))
    assert all(
        r[1].seq == r[0].seq + 1 and r[1].prev_hash == r[0].entry_hash for r in results
    )  # a request's entries stay together
    assert log.verify().ok


def test_entries_written_in_the_earlier_form_still_verify_and_edits_to_them_are_caught(log):
    from charter.audit.entries import legacy_entry
    from charter.audit.log import leaf_hash

    _fill(log, 4)
    # Rewrite the chain as a release before the header form wrote it (one canonical JSON object).
    prev = None
    for e in list(log.entries()):
        prev_hash = e.prev_hash if prev is None else prev
        h = leaf_hash(legacy_entry(e.seq, e.time, e.tenant, e.kind, e.request_id, e.body, prev_hash)).hex()
        _sql(log, "UPDATE audit_entries SET prev_hash = :p, entry_hash = :h WHERE seq = :s", p=prev_hash, h=h, s=e.seq)
        prev = h
    log._leaves.clear()
    assert log.verify().ok
    _sql(log, "UPDATE audit_entries SET body = :b WHERE seq = 2", b=json.dumps({"i": 2, "text": "edited"}))
    r = log.verify()
    assert not r.ok and r.first_bad == 2
