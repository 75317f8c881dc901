"""Attacks by someone with write access to the audit database: forged purges, deleted, reordered
and re-signed checkpoints, a log rewritten and re-anchored with the real key. Each is detected."""

import json
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from charter.audit import AuditLog, Witness, connect, load_trusted, verify_export
from charter.audit.entries import GENESIS, PURGE_KIND, PURGE_TYPE, Entry, body_digest, canonical_json, legacy_entry
from charter.audit.merkle import leaf_hash
from charter.core.errors import InputError, VerificationError
from charter.provenance.dsse import sign_envelope


@pytest.fixture(scope="module")
def attacker_key():
    return ec.generate_private_key(ec.SECP256R1())


def _fill(log, n, start=0):
    for i in range(start, start + n):
        log.append(
            "chat.request",
            {"i": i, "text": f"message {i}"},
            tenant="acme" if i % 2 == 0 else "globex",
            request_id=f"r{i}",
        )


def _sql(log, statement, **params):
    with log.engine.begin() as conn:
        conn.execute(text(statement), params)


def _rows(log):
    return list(log.entries())


def _write(log, e: Entry):
    """Store an entry row as an attacker would (every column)."""
    _sql(
        log,
        "UPDATE audit_entries SET time = :t, tenant = :tenant, kind = :k, request_id = :r, body = :b, "
        "prev_hash = :p, entry_hash = :h, purged = :purged, body_sha256 = :d WHERE seq = :s",
        t=e.time,
        tenant=e.tenant,
        k=e.kind,
        r=e.request_id,
        b=e.body,
        p=e.prev_hash,
        h=e.entry_hash,
        purged=e.purged,
        d=e.body_sha256,
        s=e.seq,
    )


def _insert(log, e: Entry):
    _sql(
        log,
        "INSERT INTO audit_entries "
        "(seq, time, tenant, kind, request_id, body, prev_hash, entry_hash, purged, body_sha256) "
        "VALUES (:s, :t, :tenant, :k, :r, :b, :p, :h, :purged, :d)",
        s=e.seq,
        t=e.time,
        tenant=e.tenant,
        k=e.kind,
        r=e.request_id,
        b=e.body,
        p=e.prev_hash,
        h=e.entry_hash,
        purged=e.purged,
        d=e.body_sha256,
    )


def _rehash_from(log, seq):
    """The attacker recomputes every hash from ``seq`` on, so the chain itself is whole again."""
    rows = _rows(log)
    prev = rows[seq - 1].entry_hash if seq else GENESIS
    for e in rows[seq:]:
        e.prev_hash = prev
        if e.body:
            e.body_sha256 = body_digest(e.body)
        e.entry_hash = e.computed_hash()
        _write(log, e)
        prev = e.entry_hash
    log._leaves.clear()


def _fake_purge(log, signer, before, *, unsigned=False):
    """An admin.purge entry appended by the attacker, well formed and hash-chained."""
    last = _rows(log)[-1]
    seq, prev = last.seq + 1, last.entry_hash
    signed = {
        "log": "charter-audit/1",
        "seq": seq,
        "prev_hash": prev,
        "before": before,
        "actor": "retention",
        "reason": "retention period",
        "purged": 3,
        "legacy": {"count": 0, "sha256": ""},
    }
    body = {k: signed[k] for k in ("before", "actor", "reason", "purged", "legacy")}
    if not unsigned:
        body["authorisation"] = sign_envelope(canonical_json(signed).encode(), PURGE_TYPE, signer)
    b = canonical_json(body)
    e = Entry(seq, last.time, None, PURGE_KIND, None, b, prev, "", False, body_digest(b))
    e.entry_hash = e.computed_hash()
    _insert(log, e)
    return e


# -- purges ----------------------------------------------------------------------------------------
def test_a_legit_purge_is_a_signed_entry_and_the_log_and_exports_still_verify(log, key, tmp_path):
    _fill(log, 6)
    cutoff = _rows(log)[-1].time
    _fill(log, 2, start=6)
    assert log.purge(cutoff, key, actor="ops", reason="GDPR erasure") == 5
    rows = _rows(log)
    purge = rows[-1]
    assert purge.kind == PURGE_KIND and purge.seq == 8
    assert purge.data["actor"] == "ops" and purge.data["reason"] == "GDPR erasure" and purge.data["before"] == cutoff
    assert purge.data["authorisation"]["payloadType"] == PURGE_TYPE
    assert all(e.body is None and e.purged and e.body_sha256 for e in rows[:5]) and rows[5].body is not None
    rep = log.verify([key.public_key()])
    assert rep.ok and rep.purged == 5, rep.problem
    r = log.export(tmp_path / "all.jsonl", key)
    assert r["entries"] == 9
    assert stat.S_IMODE(os.stat(tmp_path / "all.jsonl").st_mode) == 0o600
    assert verify_export(tmp_path / "all.jsonl", key.public_key())["entries"] == 9
    # A second purge over the same range empties nothing and writes nothing.
    assert log.purge(cutoff, key) == 0 and log.size() == 9
    assert log.verify([key.public_key()]).ok


def test_purge_entries_cannot_be_appended_unsigned(log):
    with pytest.raises(InputError, match="signed"):
        log.append(PURGE_KIND, {"before": "2999-01-01T00:00:00.000000Z"})


@pytest.mark.parametrize("how", ["body rewritten", "body emptied"])
def test_a_forged_purge_flag_with_rewritten_tenant_fails_verify_and_verify_export(log, key, tmp_path, how):
    _fill(log, 6)
    if how == "body emptied":  # a genuine purge covers entries 0..2, so only the header rewrite is wrong
        log.purge(_rows(log)[3].time, key)
    log.checkpoint(key)
    e = _rows(log)[1]
    e.tenant, e.purged = "victim", True
    e.body = None if how == "body emptied" else canonical_json({"i": 1, "text": "what the attacker wants on record"})
    _write(log, e)
    rep = log.verify([key.public_key()])
    assert not rep.ok and rep.first_bad == 1, rep.problem
    log.export(tmp_path / "x.jsonl", key)
    with pytest.raises(VerificationError, match="entry 1 "):
        verify_export(tmp_path / "x.jsonl", key.public_key())


def test_an_edited_export_line_flagged_purged_fails(log, key, tmp_path):
    _fill(log, 4)
    log.export(tmp_path / "x.jsonl", key)
    lines = (tmp_path / "x.jsonl").read_text().splitlines()
    rec = json.loads(lines[2])
    rec |= {"purged": True, "tenant": "victim", "body": canonical_json({"forged": True})}
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:2] + [json.dumps(rec)] + lines[3:]) + "\n")
    with pytest.raises(VerificationError, match=":3: entry 1 is flagged purged but still has content"):
        verify_export(tmp_path / "a.jsonl", key.public_key())
    rec |= {"body": None}  # emptied instead: no signed purge in the file authorises it
    (tmp_path / "b.jsonl").write_text("\n".join(lines[:2] + [json.dumps(rec)] + lines[3:]) + "\n")
    with pytest.raises(VerificationError, match=":3: entry 1 "):
        verify_export(tmp_path / "b.jsonl", key.public_key())


@pytest.mark.parametrize("flag", [True, False])
def test_content_deleted_without_an_authorising_purge_fails(log, key, tmp_path, flag):
    _fill(log, 6)
    log.checkpoint(key)
    _sql(log, "UPDATE audit_entries SET body = NULL, purged = :f WHERE seq = 3", f=flag)
    rep = log.verify([key.public_key()])
    assert not rep.ok and rep.first_bad == 3 and "no signed purge" in rep.problem
    log.export(tmp_path / "x.jsonl", key)
    with pytest.raises(VerificationError, match="entry 3 has no content and no signed purge"):
        verify_export(tmp_path / "x.jsonl", key.public_key())


def test_a_purge_does_not_cover_entries_after_it_or_newer_than_its_cutoff(log, key):
    _fill(log, 4)
    log.purge(_rows(log)[2].time, key)  # empties 0 and 1; the purge entry is 4
    _fill(log, 2, start=5)
    # Entry 2 is newer than the cutoff; entry 5 comes after the purge entry.
    for seq in (2, 5):
        _sql(log, "UPDATE audit_entries SET body = NULL, purged = :t WHERE seq = :s", t=True, s=seq)
        rep = log.verify([key.public_key()])
        assert not rep.ok and rep.first_bad == seq, rep.problem
        e = _rows(log)[seq]
        e.body, e.purged = canonical_json({"i": seq, "text": f"message {seq}"}), False
        _write(log, e)
    assert log.verify([key.public_key()]).ok


@pytest.mark.parametrize("forgery", ["attacker-signed", "unsigned", "replayed"])
def test_a_fake_purge_entry_fails_with_the_pinned_key(log, key, attacker_key, forgery):
    _fill(log, 6)
    log.checkpoint(key)
    if forgery == "replayed":  # a genuine signed purge, copied to another place in the log
        log.purge(_rows(log)[0].time, key)
        real = _rows(log)[-1]
        e = Entry(
            real.seq + 1, real.time, None, PURGE_KIND, None, real.body, real.entry_hash, "", False, real.body_sha256
        )
        e.entry_hash = e.computed_hash()
        _insert(log, e)
        fake = e
    else:
        fake = _fake_purge(log, attacker_key, "2999-01-01T00:00:00.000000Z", unsigned=forgery == "unsigned")
    rep = log.verify([key.public_key()])
    assert not rep.ok and rep.first_bad == fake.seq, rep.problem
    # What the forgery was for: emptying entries it claims to cover.
    _sql(log, "UPDATE audit_entries SET body = NULL, purged = :t WHERE seq IN (2, 3)", t=True)
    rep = log.verify([key.public_key()])
    assert not rep.ok and rep.first_bad == 2 and "no signed purge" in rep.problem


def test_entries_of_the_earlier_forms_purged_by_a_signed_purge_keep_their_headers_bound(log, key):
    _fill(log, 5)
    # Rewrite entries 0..3 as an earlier release wrote them: legacy form, no body digest kept.
    prev = GENESIS
    for e in _rows(log)[:4]:
        h = leaf_hash(legacy_entry(e.seq, e.time, e.tenant, e.kind, e.request_id, e.body, prev)).hex()
        _sql(
            log,
            "UPDATE audit_entries SET prev_hash = :p, entry_hash = :h, body_sha256 = NULL WHERE seq = :s",
            p=prev,
            h=h,
            s=e.seq,
        )
        prev = h
    _rehash_from(log, 4)
    assert log.verify().ok
    assert log.purge(_rows(log)[2].time, key) == 2
    assert log.verify([key.public_key()]).ok
    e = _rows(log)[1]
    assert e.body is None and e.body_sha256 is None
    e.tenant = "victim"
    _write(log, e)
    rep = log.verify([key.public_key()])
    assert not rep.ok and "differ from what it signed" in rep.problem, rep.problem
    assert rep.first_bad == 0


# -- checkpoints -----------------------------------------------------------------------------------
def _three_checkpoints(log, key, witness=None):
    cps = []
    for k in range(3):
        _fill(log, 4, start=4 * k)
        cps.append(log.checkpoint(key, witness=witness))
    return cps


def test_checkpoints_form_a_chain_with_signed_consistency_proofs(log, key):
    cps = _three_checkpoints(log, key)
    from charter.audit.entries import _signed_body

    bodies = [_signed_body(c) for c in cps]
    assert [b["index"] for b in bodies] == [0, 1, 2]
    assert bodies[0]["prev"] is None
    assert bodies[2]["prev"] == {"digest": cps[1].digest, "tree_size": 8, "root_hash": cps[1].root_hash}
    assert bodies[2]["consistency_proof"]
    rep = log.verify([key.public_key()])
    assert rep.ok and rep.checkpoints == 3 and not any("unchained" in n for n in rep.notes)


def test_a_stored_consistency_proof_that_does_not_lead_from_the_previous_root_fails(log, key):
    """The check uses the signed proof against the previous signed root: a checkpoint signed
    with a wrong proof fails, though both roots match the entries."""
    cps = _three_checkpoints(log, key)
    from charter.audit.entries import CHECKPOINT_TYPE, _signed_body

    body = _signed_body(cps[2])
    body["consistency_proof"] = list(reversed(body["consistency_proof"])) + ["00" * 32]
    env = sign_envelope(canonical_json(body).encode(), CHECKPOINT_TYPE, key)
    _sql(log, "UPDATE audit_checkpoints SET envelope = :e WHERE id = :i", e=json.dumps(env), i=cps[2].id)
    rep = log.verify([key.public_key()])
    assert not rep.ok and "consistency proof" in rep.problem, rep.problem


def test_rewriting_below_the_last_checkpoint_is_never_re_signed(log, key):
    _three_checkpoints(log, key)
    e = _rows(log)[5]
    e.body = canonical_json({"i": 5, "text": "rewritten"})
    _write(log, e)
    _rehash_from(log, 5)
    fresh = AuditLog(log.engine)  # a new process (the CLI): no cached leaves
    _fill(fresh, 1, start=12)
    with pytest.raises(VerificationError, match="no longer extends checkpoint"):
        fresh.checkpoint(key)
    assert not log.verify([key.public_key()]).ok


def test_deleted_checkpoints_and_a_re_anchored_rewrite_are_caught_by_the_witness(log, key, tmp_path):
    witness = tmp_path / "witness" / "checkpoints.jsonl"
    _three_checkpoints(log, key, witness=Witness(witness))
    assert stat.S_IMODE(os.stat(witness).st_mode) == 0o600
    trusted = load_trusted(witness)
    assert [r["tree_size"] for r in trusted] == [4, 8, 12]
    assert log.verify([key.public_key()], trusted=trusted).ok
    # The attack: delete the checkpoints after entry 4, rewrite entry 6, recompute every later
    # hash, and have the real key re-anchor the forgery (`charter audit checkpoint`).
    _sql(log, "DELETE FROM audit_checkpoints WHERE tree_size > 4")
    e = _rows(log)[6]
    e.body = canonical_json({"i": 6, "text": "what the attacker wants on record"})
    _write(log, e)
    _rehash_from(log, 6)
    cp = AuditLog(log.engine).checkpoint(key)
    assert cp.tree_size == 12
    # Alone, the database now tells a consistent story...
    assert log.verify([key.public_key()]).ok
    # ...which the checkpoints kept elsewhere contradict (with pinned keys, or the file's own).
    for keys in ([key.public_key()], None):
        rep = log.verify(keys, trusted=trusted)
        assert not rep.ok and rep.first_bad == 4 and "do not match trusted checkpoint" in rep.problem, rep.problem


def test_deleting_only_the_checkpoints_after_a_witnessed_one_is_caught(log, key, tmp_path):
    witness = tmp_path / "w.jsonl"
    _three_checkpoints(log, key, witness=Witness(witness))
    _sql(log, "DELETE FROM audit_checkpoints WHERE tree_size > 4")
    assert log.verify([key.public_key()]).ok  # a tail of checkpoints: only a witness knows it existed
    AuditLog(log.engine).checkpoint(key)  # re-anchored with the real key: a different checkpoint #1
    rep = log.verify([key.public_key()], trusted=load_trusted(witness))
    assert not rep.ok and "not among the log's checkpoints" in rep.problem, rep.problem


@pytest.mark.parametrize(
    "attack", ["delete-middle", "replay", "swap-envelopes", "re-sign-middle", "re-sign-attacker-pinned"]
)
def test_deleted_reordered_and_re_signed_checkpoints_are_detected(log, key, attacker_key, attack):
    from charter.audit.entries import CHECKPOINT_TYPE, _signed_body

    cps = _three_checkpoints(log, key)
    pinned = [key.public_key()]
    if attack == "delete-middle":
        _sql(log, "DELETE FROM audit_checkpoints WHERE id = :i", i=cps[1].id)
    elif attack == "replay":  # a genuine signed checkpoint inserted a second time
        c = cps[0]
        _sql(
            log,
            "INSERT INTO audit_checkpoints (tree_size, root_hash, time, key_id, public_key, envelope) "
            "VALUES (:n, :r, :t, :k, :p, :e)",
            n=c.tree_size,
            r=c.root_hash,
            t=c.time,
            k=c.key_id,
            p=c.public_key,
            e=json.dumps(c.envelope),
        )
    elif attack == "swap-envelopes":
        _sql(
            log, "UPDATE audit_checkpoints SET envelope = :e WHERE id = :i", e=json.dumps(cps[2].envelope), i=cps[1].id
        )
        _sql(
            log, "UPDATE audit_checkpoints SET envelope = :e WHERE id = :i", e=json.dumps(cps[1].envelope), i=cps[2].id
        )
    else:  # re-signed (another time, same tree) with a key the attacker holds, its row updated to match
        c = cps[1] if attack == "re-sign-middle" else cps[2]
        body = _signed_body(c) | {"time": "2000-01-01T00:00:00.000000Z"}
        from cryptography.hazmat.primitives import serialization

        from charter.provenance.keys import key_id

        pub = attacker_key.public_key()
        pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        env = sign_envelope(canonical_json(body).encode(), CHECKPOINT_TYPE, attacker_key)
        _sql(
            log,
            "UPDATE audit_checkpoints SET envelope = :e, key_id = :k, public_key = :p WHERE id = :i",
            e=json.dumps(env),
            k=key_id(pub),
            p=pem,
            i=c.id,
        )
        if attack == "re-sign-middle":
            pinned = None  # even trusting the keys in the database, the next checkpoint's link breaks
    rep = log.verify(pinned)
    assert not rep.ok, attack
    assert rep.problem and "checkpoint" in rep.problem


def test_checkpoints_from_before_chaining_still_verify_and_the_next_one_links_to_them(log, key):
    from cryptography.hazmat.primitives import serialization

    from charter.audit.entries import CHECKPOINT_TYPE
    from charter.provenance.keys import key_id

    _fill(log, 4)
    # A checkpoint as earlier releases signed it: no index, no predecessor, no proof.
    old = {
        "tree_size": 4,
        "root_hash": AuditLog(log.engine).checkpoint(key).root_hash,
        "time": "2020-01-01T00:00:00.000000Z",
        "log": "charter-audit/1",
    }
    _sql(log, "DELETE FROM audit_checkpoints")
    pub = key.public_key()
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    env = sign_envelope(canonical_json(old).encode(), CHECKPOINT_TYPE, key)
    _sql(
        log,
        "INSERT INTO audit_checkpoints (tree_size, root_hash, time, key_id, public_key, envelope) "
        "VALUES (4, :r, :t, :k, :p, :e)",
        r=old["root_hash"],
        t=old["time"],
        k=key_id(pub),
        p=pem,
        e=json.dumps(env),
    )
    _fill(log, 3, start=4)
    new = log.checkpoint(key)
    from charter.audit.entries import _signed_body

    assert _signed_body(new)["index"] == 1 and _signed_body(new)["prev"]["tree_size"] == 4
    rep = log.verify([pub])
    assert rep.ok and rep.checkpoints == 2 and any("not chained" in n for n in rep.notes), rep.problem


# -- witness -----------------------------------------------------------------------------------------
def test_witness_posts_each_checkpoint_and_retries_after_a_failure(log, key):
    import http.server
    import socket
    import threading

    got = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *a):
            pass

    with socket.socket() as s:  # a port nobody listens on yet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    witness = Witness(url=f"http://127.0.0.1:{port}/witness", retry_seconds=0, timeout=2)
    log.witness = witness
    _fill(log, 2)
    first = log.checkpoint(key)  # the witness is down: logged, kept, and the gateway carries on
    assert first is not None and witness.pending == 1 and got == []
    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _fill(log, 2, start=2)
        second = log.checkpoint(key)
        assert witness.pending == 0
        assert [r["tree_size"] for r in got] == [2, 4] and got[1]["envelope"] == second.envelope
        assert log.verify([key.public_key()], trusted=got).ok
    finally:
        server.shutdown()
        server.server_close()


def test_trusted_file_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="no such trusted checkpoint file"):
        load_trusted(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"type": "entry"}\n')
    with pytest.raises(InputError, match="not a checkpoint record"):
        load_trusted(tmp_path / "bad.jsonl")
    with pytest.raises(InputError, match="http"):
        Witness(url="ftp://example.org/x")


def test_the_first_line_of_an_export_is_a_trusted_checkpoint(log, key, tmp_path):
    _fill(log, 5)
    log.export(tmp_path / "x.jsonl", key)
    head = (tmp_path / "x.jsonl").read_text().splitlines()[0]
    (tmp_path / "t.jsonl").write_text(head + "\n")
    assert log.verify([key.public_key()], trusted=load_trusted(tmp_path / "t.jsonl")).trusted == 1


def test_the_gateway_witnesses_its_checkpoints_and_its_retention_purge_verifies(db_url, tmp_path):
    """GatewayState's periodic checkpoint appends to the configured witness file; its retention
    purge is a signed entry; the log then verifies against the witness file."""
    from charter.gateway import GatewayConfig, GatewayState, OpenAIUpstream

    witness = tmp_path / "witness.jsonl"
    cfg = GatewayConfig.model_validate(
        {
            "server": {
                "database": db_url,
                "runtime_key": str(tmp_path / "runtime.pem"),
                "checkpoint_seconds": 3600,
                "system_prompt": "none",
                "log_requests": False,
                "retention_days": 1e-9,
                "witness_file": str(witness),
            },
            "upstream": {"model": "openai:http://127.0.0.1:9/v1#stub", "model_id": "charter-test"},
        }
    )
    state = GatewayState(cfg, upstream=OpenAIUpstream("openai:http://127.0.0.1:9/v1#stub", model_id="charter-test"))
    try:
        _fill(state.log, 3)
        state._checkpoint()
        state._retention()
        _fill(state.log, 1, start=3)
        state._checkpoint()
        trusted = load_trusted(witness)
        assert len(trusted) >= 2 and stat.S_IMODE(os.stat(witness).st_mode) == 0o600
        assert any(e.kind == PURGE_KIND for e in state.log.entries())
        rep = state.log.verify([state.runtime_key.public_key()], trusted=trusted)
        assert rep.ok and rep.purged >= 3 and rep.trusted == len(trusted), rep.problem
    finally:
        state.close()


def test_concurrent_checkpointers_keep_one_linear_chain(db_url, key):
    """Several processes (here: engines) checkpointing while others append never fork the chain."""
    from concurrent.futures import ThreadPoolExecutor

    engines = [connect(db_url) for _ in range(3)]
    logs = [AuditLog(e) for e in engines]
    try:

        def work(k):
            for i in range(8):
                logs[k].append("x", {"k": k, "i": i}, tenant="t")
                logs[k].checkpoint(key)

        with ThreadPoolExecutor(3) as pool:
            list(pool.map(work, range(3)))
        rep = logs[0].verify([key.public_key()])
        assert rep.ok and rep.entries == 24 and rep.checkpoints >= 3, rep.problem
        from charter.audit.entries import _signed_body

        assert [_signed_body(c)["index"] for c in logs[0].checkpoints()] == list(range(rep.checkpoints))
    finally:
        for e in engines:
            e.dispose()


# -- found by an attacker review ---------------------------------------------------------------------
def _export_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write_lines(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


@pytest.mark.parametrize("where", ["database", "export file"])
def test_an_entry_disguised_as_an_earlier_form_purged_entry_fails_verify_export(log, key, tmp_path, where):
    """Nulling body *and* body_sha256 made an entry look like an earlier-form entry emptied by the
    signed purge after it; verify_export, unlike verify, did not check the purge's signed list of
    earlier-form headers, so content was hidden and the header rewritten."""
    _fill(log, 6)
    log.append(
        "violation.report",
        {"description": "harmful output", "reporter": "victim"},
        tenant="victim",
        request_id="r-victim",
    )
    log.checkpoint(key)
    assert log.purge(_rows(log)[2].time, key) == 2  # empties 0 and 1 (current form); the report is newer
    _fill(log, 3, start=8)
    forged = {
        "body": None,
        "body_sha256": None,
        "purged": True,
        "tenant": "acme",
        "kind": "chat.request",
        "request_id": "r-benign",
        "time": "2000-01-01T00:00:00.000000Z",
    }
    out = tmp_path / "x.jsonl"
    if where == "database":
        _sql(
            log,
            "UPDATE audit_entries SET body = NULL, body_sha256 = NULL, purged = :t, tenant = 'acme', "
            "kind = 'chat.request', request_id = 'r-benign', time = '2000-01-01T00:00:00.000000Z' WHERE seq = 6",
            t=True,
        )
        assert not log.verify([key.public_key()]).ok
        log.export(out, key)  # the gateway's own export of the tampered database
    else:  # whoever relays an honest export edits the file
        log.export(tmp_path / "honest.jsonl", key)
        assert verify_export(tmp_path / "honest.jsonl", key.public_key())["entries"] == 11
        recs = _export_lines(tmp_path / "honest.jsonl")
        for r in recs:
            if r.get("type") == "entry" and r["seq"] == 6:
                r |= forged
        _write_lines(out, recs)
    with pytest.raises(VerificationError, match="entry 6 has no content and no kept body digest"):
        verify_export(out, key.public_key())


def _earlier_form(log, upto):
    """Rewrite entries 0..upto-1 as a release before body digests wrote them, rehash the rest."""
    prev = GENESIS
    for e in _rows(log)[:upto]:
        h = leaf_hash(legacy_entry(e.seq, e.time, e.tenant, e.kind, e.request_id, e.body, prev)).hex()
        _sql(
            log,
            "UPDATE audit_entries SET prev_hash = :p, entry_hash = :h, body_sha256 = NULL WHERE seq = :s",
            p=prev,
            h=h,
            s=e.seq,
        )
        prev = h
    _rehash_from(log, upto)


def test_an_export_carries_the_signed_headers_of_the_earlier_form_entries_a_purge_emptied(log, key, tmp_path):
    _fill(log, 6)
    _earlier_form(log, 4)
    assert log.purge(_rows(log)[3].time, key) == 3  # empties 0, 1, 2: earlier form, headers signed
    _fill(log, 1, start=7)
    assert log.verify([key.public_key()]).ok
    for tenant in (None, "acme", "globex"):
        out = tmp_path / f"{tenant}.jsonl"
        log.export(out, key, tenant=tenant)
        purge = [r for r in _export_lines(out) if r["type"] == "purge"]
        assert len(purge) == 1 and [h[0] for h in purge[0]["legacy_headers"]] == [0, 1, 2]
        verify_export(out, key.public_key())
    recs = _export_lines(tmp_path / "None.jsonl")
    e1 = next(r for r in recs if r.get("seq") == 1 and r["type"] == "entry")
    p = next(r for r in recs if r["type"] == "purge")
    e1["tenant"] = "victim"  # a rewritten header of an emptied earlier-form entry
    _write_lines(tmp_path / "a.jsonl", recs)
    with pytest.raises(VerificationError, match="entry 1 has no content and no kept body digest"):
        verify_export(tmp_path / "a.jsonl", key.public_key())
    p["legacy_headers"][1][2] = "victim"  # ...and the list beside the purge edited to match
    _write_lines(tmp_path / "b.jsonl", recs)
    with pytest.raises(VerificationError, match="differ from what it signed"):
        verify_export(tmp_path / "b.jsonl", key.public_key())


def _fake_checkpoint_row(log, size, root, *, key_id="x", envelope=None):
    _sql(
        log,
        "INSERT INTO audit_checkpoints (tree_size, root_hash, time, key_id, public_key, envelope) "
        "VALUES (:n, :r, 'x', :k, 'x', :e)",
        n=size,
        r=root,
        k=key_id,
        e=json.dumps(envelope or {}),
    )


@pytest.mark.parametrize("row", ["huge tree size", "same size, other root", "truncated log", "emptied log"])
def test_a_last_checkpoint_row_that_does_not_verify_stops_checkpointing_loudly(log, key, tmp_path, row):
    """A fake last row (any key_id column) used to be returned unchecked (checkpointing and
    witnessing silently stopped, or a proof was served against it); now checkpoint() refuses."""
    witness = tmp_path / "w.jsonl"
    log.witness = Witness(witness)
    _fill(log, 6)
    log.checkpoint(key)
    if row == "huge tree size":
        _fake_checkpoint_row(log, 10**12, "x")
        _fill(log, 2, start=6)
    elif row == "same size, other root":
        _fake_checkpoint_row(log, 6, "ab" * 32, key_id="not-ours")
    else:  # the genuine checkpoint now signs more entries than the log holds
        _sql(log, "DELETE FROM audit_entries WHERE seq >= :n", n=4 if row == "truncated log" else 0)
        log = AuditLog(log.engine, witness=log.witness)  # a restarted gateway
    with pytest.raises(VerificationError, match="refusing to sign"):
        log.checkpoint(key)
    assert len(load_trusted(witness)) == 1


def test_a_forged_last_checkpoint_row_cannot_get_a_rewritten_log_signed(log, key, tmp_path):
    import base64

    from charter.audit.merkle import MerkleTree

    _fill(log, 6)
    log.checkpoint(key)
    e = _rows(log)[2]
    e.body, e.tenant = canonical_json({"i": 2, "note": "rewritten"}), "victim"
    _write(log, e)
    _rehash_from(log, 2)
    gw = AuditLog(log.engine)  # a restarted gateway, or the CLI
    _fill(gw, 1, start=6)
    with pytest.raises(VerificationError, match="no longer extends"):
        gw.checkpoint(key)
    root = MerkleTree(gw.leaf_hashes()).root().hex()
    payload = canonical_json({"log": "charter-audit/1", "tree_size": 7, "root_hash": root, "index": 0}).encode()
    _fake_checkpoint_row(
        log,
        7,
        root,
        key_id="not-ours",
        envelope={"payload": base64.b64encode(payload).decode(), "payloadType": "x", "signatures": []},
    )
    _fill(gw, 1, start=7)
    with pytest.raises(VerificationError, match="refusing to sign"):
        gw.checkpoint(key)
    assert [c.tree_size for c in gw.checkpoints()] == [6, 7]  # nothing signed over the rewritten log
    with pytest.raises(VerificationError):
        gw.export(tmp_path / "x.jsonl", key, tenant="victim")


@pytest.mark.parametrize("how", ["argument", "constructor"])
def test_after_a_key_rotation_the_new_key_chains_on_only_when_given_the_earlier_key(log, key, how):
    from charter.provenance.keys import key_id

    old = ec.generate_private_key(ec.SECP256R1())
    _fill(log, 3)
    log.checkpoint(old)
    _fill(log, 2, start=3)
    with pytest.raises(VerificationError, match=f"{key_id(old.public_key())}.*earlier"):
        log.checkpoint(key)
    if how == "argument":
        cp = log.checkpoint(key, trusted_keys=[old.public_key()])
    else:
        cp = AuditLog(log.engine, earlier_keys=[old.public_key()]).checkpoint(key)
    assert cp.tree_size == 5
    _fill(log, 1, start=5)
    assert log.checkpoint(key).tree_size == 6  # the last checkpoint is its own now
    rep = log.verify([old.public_key(), key.public_key()])
    assert rep.ok and rep.checkpoints == 3, rep.problem


def _old_release_log(log, key, plan):
    """What the release before signed purges left: entries hashed in the single-object form; each
    purge emptied every unpurged entry older than its cutoff, then appended {before, purged,
    actor}; one unchained checkpoint at the end. ``plan``: "e" (an entry) or a purge's cutoff as
    the index of the first entry it keeps."""
    from cryptography.hazmat.primitives import serialization

    from charter.audit.entries import CHECKPOINT_TYPE
    from charter.audit.merkle import MerkleTree
    from charter.provenance.keys import key_id

    def t(i):
        return f"2020-01-01T00:00:{i:02d}.000000Z"

    rows, prev = [], GENESIS
    for seq, step in enumerate(plan):
        if step == "e":
            body, kind, tenant, rid = (
                canonical_json({"i": seq, "text": f"message {seq}"}),
                "chat.request",
                "acme",
                f"r{seq}",
            )
        else:
            emptied = [r for r in rows if r.time < t(step) and not r.purged]
            for r in emptied:
                r.purged = True
            body, kind, tenant, rid = (
                canonical_json({"before": t(step), "purged": len(emptied), "actor": "retention"}),
                PURGE_KIND,
                None,
                None,
            )
        h = leaf_hash(legacy_entry(seq, t(seq), tenant, kind, rid, body, prev)).hex()
        rows.append(Entry(seq, t(seq), tenant, kind, rid, body, prev, h, False, None))
        prev = h
    for r in rows:
        if r.purged:
            r.body = None
        _insert(log, r)
    pub = key.public_key()
    old = {
        "tree_size": len(rows),
        "root_hash": MerkleTree([bytes.fromhex(r.entry_hash) for r in rows]).root().hex(),
        "time": t(len(rows)),
        "log": "charter-audit/1",
    }
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    _sql(
        log,
        "INSERT INTO audit_checkpoints (tree_size, root_hash, time, key_id, public_key, envelope) "
        "VALUES (:n, :r, :t, :k, :p, :e)",
        n=old["tree_size"],
        r=old["root_hash"],
        t=old["time"],
        k=key_id(pub),
        p=pem,
        e=json.dumps(sign_envelope(canonical_json(old).encode(), CHECKPOINT_TYPE, key)),
    )


def test_an_old_unsigned_purge_cannot_account_for_more_entries_than_it_emptied(log, key, tmp_path):
    # Entries 0..5; an old purge (6) empties 0, 1; entries 7, 8; an old purge (9) empties 2, 3.
    _old_release_log(log, key, ["e"] * 6 + [2, "e", "e", 4])
    _fill(log, 3, start=100)  # upgraded: the new release appends and signs chained checkpoints
    log.checkpoint(key)
    rep = log.verify([key.public_key()])
    assert rep.ok and rep.purged == 4 and any("before purges were signed" in n for n in rep.notes), rep.problem
    # Entry 5 was never purged: erase it and rewrite its header below an old cutoff.
    for when, blamed in (("2000-01-01T00:00:00.000000Z", 6), ("2020-01-01T00:00:03.500000Z", 9)):
        _sql(
            log,
            "UPDATE audit_entries SET body = NULL, purged = :t, time = :w, tenant = 'someone-else', "
            "request_id = 'r-fake' WHERE seq = 5",
            t=True,
            w=when,
        )
        rep = log.verify([key.public_key()])
        assert not rep.ok and f"attributed to purge entry {blamed}" in rep.problem, rep.problem
    # Moving an emptied entry from one old purge to the other is caught the same way.
    _sql(
        log,
        "UPDATE audit_entries SET body = :b, purged = :f, time = '2020-01-01T00:00:05.000000Z', tenant = 'acme', "
        "request_id = 'r5' WHERE seq = 5",
        b=canonical_json({"i": 5, "text": "message 5"}),
        f=False,
    )
    assert log.verify([key.public_key()]).ok
    _sql(log, "UPDATE audit_entries SET time = '2020-01-01T00:00:03.000000Z' WHERE seq = 1")
    rep = log.verify([key.public_key()])
    assert not rep.ok and "attributed to purge entry 9" in rep.problem, rep.problem
    # Offline, entries emptied by an old purge cannot be checked at all.
    _sql(log, "UPDATE audit_entries SET time = '2020-01-01T00:00:01.000000Z' WHERE seq = 1")
    log.export(tmp_path / "x.jsonl", key)
    with pytest.raises(VerificationError, match="entry 0 has no content and no kept body digest"):
        verify_export(tmp_path / "x.jsonl", key.public_key())


def test_a_proof_of_a_covered_entry_signs_no_new_checkpoint(log, key):
    # The proof route asks for a checkpoint covering its entry: one already checked that holds it
    # is reused, so tenants calling it cannot make the gateway sign (and witness) per call.
    for i in range(3):
        log.append("chat.request", {"i": i}, tenant="acme")
    first = log.checkpoint(key)
    log.append("chat.request", {"i": 3}, tenant="acme")
    assert log.checkpoint(key, covering=1).id == first.id
    assert len(log.checkpoints()) == 1
    newer = log.checkpoint(key, covering=3)  # entry 3 is not in the first: a new one is signed
    assert newer.id != first.id and newer.tree_size == 4
    assert log.verify([key.public_key()]).ok
