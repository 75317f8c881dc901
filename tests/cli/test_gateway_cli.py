import json

from cryptography.hazmat.primitives import serialization

from tests.cli.test_cli import _one_error_line, invoke


def _cfg(tmp_path, db_url, extra=""):
    p = tmp_path / "gateway.toml"
    p.write_text(f'[server]\ndatabase = "{db_url}"\nruntime_key = "{tmp_path / "rt.pem"}"\n' + extra)
    return p


def test_admin_incident_and_audit_commands(tmp_path, db_url):
    cfg = _cfg(tmp_path, db_url)
    r = invoke("admin", "add-tenant", "acme", "--config", cfg)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().startswith("chk-")
    assert "exists" in _one_error_line(invoke("admin", "add-tenant", "acme", "--config", cfg))
    assert invoke("admin", "suspend", "--config", cfg, "--reason", "drill").exit_code == 0
    status = json.loads(invoke("admin", "status", "--config", cfg).stdout)
    assert status["suspensions"][0]["reason"] == "drill"
    assert invoke("admin", "resume", "--config", cfg).exit_code == 0
    assert json.loads(invoke("admin", "status", "--config", cfg).stdout)["suspensions"] == []

    r = invoke("audit", "verify", "--config", cfg)
    assert r.exit_code == 0 and "audit log ok: 3 entries" in r.stdout, r.output
    r = invoke("audit", "checkpoint", "--config", cfg)
    assert r.exit_code == 0 and "3 entries" in r.stdout
    key = serialization.load_pem_private_key((tmp_path / "rt.pem").read_bytes(), None)
    (tmp_path / "rt.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert invoke("audit", "verify", "--config", cfg, "--public-key", tmp_path / "rt.pub").exit_code == 0
    r = invoke("audit", "export", "--config", cfg, "--out", tmp_path / "x.jsonl", "--since", "2000-01-01")
    assert r.exit_code == 0 and "exported 3 entries" in r.stdout, r.output
    r = invoke("audit", "verify-export", tmp_path / "x.jsonl", "--public-key", tmp_path / "rt.pub")
    assert r.exit_code == 0 and "export ok: 3 entries" in r.stdout
    proof = json.loads(invoke("audit", "prove", "1", "--config", cfg).stdout)
    assert proof["entry"]["seq"] == 1 and proof["inclusion_proof"]
    cons = json.loads(invoke("audit", "prove", "--from-size", "1", "--config", cfg).stdout)
    assert cons["new_size"] >= 3
    r = invoke("audit", "purge", "--older-than-days", "0.0000001", "--config", cfg)
    assert r.exit_code == 0 and "purged the content of" in r.stdout
    assert invoke("audit", "verify", "--config", cfg, "--public-key", tmp_path / "rt.pub").exit_code == 0
    assert "no incident 7" in _one_error_line(invoke("incident", "report", "7", "--config", cfg))
    assert "not an ISO" in _one_error_line(
        invoke("audit", "export", "--config", cfg, "--out", tmp_path / "y", "--since", "May")
    )


def test_bad_gateway_configs_are_one_line_errors(tmp_path):
    assert "no such gateway config" in _one_error_line(invoke("serve", "--config", tmp_path / "nope.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'eighty'\n")
    assert "server.port" in _one_error_line(invoke("serve", "--config", bad))
    bad.write_text("[server]\nguard_off = true\n")
    assert "server.guard_off" in _one_error_line(invoke("serve", "--config", bad))
    bad.write_text("[server\n")
    assert "not valid TOML" in _one_error_line(invoke("serve", "--config", bad))
    bad.write_text('[server]\ndatabase = "nonsense"\n')
    assert "not a database URL" in _one_error_line(invoke("admin", "status", "--config", bad))
    bad.write_text(
        '[upstream]\nmodel = "hf:/no/such/model"\n[server]\ndatabase = "sqlite:///%s"\n' % (tmp_path / "d.db")
    )
    assert "no such model" in _one_error_line(invoke("serve", "--config", bad))


def test_revoke_tenant_and_per_tenant_suspension(tmp_path, db_url):
    from charter.audit import AuditLog, connect
    from charter.gateway.store.schema import console_sessions
    from charter.gateway.tenants import TenantDirectory, hash_key

    cfg = _cfg(tmp_path, db_url, '[[tenants]]\nname = "declared"\nkey_sha256 = "%s"\n' % hash_key("chk-declared"))
    key = invoke("admin", "add-tenant", "acme", "--admin", "--config", cfg).stdout.strip()
    engine = connect(db_url)
    with engine.begin() as conn:  # a console login of acme's
        conn.execute(console_sessions.insert().values(token_hash="ab" * 32, tenant="acme", expires=4e9))
    assert TenantDirectory(engine).lookup(key).name == "acme"
    r = invoke("admin", "revoke-tenant", "acme", "--config", cfg)
    assert r.exit_code == 0 and "revoked tenant acme (1 console sessions ended)" in r.stdout, r.output
    assert TenantDirectory(engine).lookup(key) is None
    with engine.connect() as conn:
        assert conn.execute(console_sessions.select()).first() is None
    entry = list(AuditLog(engine).entries(kinds=["admin.revoke_tenant"]))[-1].data
    assert entry["tenant"] == "acme" and entry["actor"] == "cli" and entry["admin"] is True
    assert "no tenant 'acme'" in _one_error_line(invoke("admin", "revoke-tenant", "acme", "--config", cfg))
    # A tenant the config declares comes back at the next start: the command says so.
    from charter.gateway.tenants import upsert_tenant_hash

    upsert_tenant_hash(engine, "declared", hash_key("chk-declared"), admin=False, rate_limit_rpm=60)
    r = invoke("admin", "revoke-tenant", "declared", "--config", cfg)
    assert r.exit_code == 0 and "remove the block" in r.stdout

    assert invoke("admin", "suspend", "--tenant", "bob", "--reason", "abuse", "--config", cfg).exit_code == 0
    status = json.loads(invoke("admin", "status", "--config", cfg).stdout)
    assert [s["scope"] for s in status["suspensions"]] == ["tenant:bob"]
    assert "not both" in _one_error_line(invoke("admin", "resume", "--tenant", "bob", "--model", "m", "--config", cfg))
    r = invoke("admin", "resume", "--tenant", "bob", "--config", cfg)
    assert r.exit_code == 0 and "resumed tenant:bob" in r.stdout and "not suspended" not in r.stdout
    engine.dispose()


def test_audit_witness_file_catches_a_re_anchored_rewrite(tmp_path, db_url):
    """`audit checkpoint --witness` keeps checkpoints outside the database; after an attacker
    deletes the later checkpoints, rewrites an entry, recomputes the hashes and re-anchors with
    the real key, `audit verify --trusted` fails while plain `audit verify` cannot tell."""
    import os
    import stat

    from sqlalchemy import text

    from charter.audit import AuditLog, connect
    from charter.audit.entries import body_digest, canonical_json

    witness = tmp_path / "auditor" / "checkpoints.jsonl"
    cfg = _cfg(tmp_path, db_url, f'witness_file = "{tmp_path / "gateway-witness.jsonl"}"\n')
    for name in ("acme", "globex"):
        assert invoke("admin", "add-tenant", name, "--config", cfg).exit_code == 0
    r = invoke("audit", "checkpoint", "--config", cfg, "--witness", witness)
    assert r.exit_code == 0, r.output
    for name in ("initech", "umbrella"):
        assert invoke("admin", "add-tenant", name, "--config", cfg).exit_code == 0
    assert invoke("audit", "checkpoint", "--config", cfg, "--witness", witness).exit_code == 0
    assert stat.S_IMODE(os.stat(witness).st_mode) == 0o600
    assert len(witness.read_text().splitlines()) == 2
    # The configured witness got the same checkpoints (the CLI signs with the gateway's key).
    assert len((tmp_path / "gateway-witness.jsonl").read_text().splitlines()) == 2
    pub = tmp_path / "rt.pub"
    key = serialization.load_pem_private_key((tmp_path / "rt.pem").read_bytes(), None)
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    r = invoke("audit", "verify", "--config", cfg, "--public-key", pub, "--trusted", witness)
    assert r.exit_code == 0 and "all 2 trusted checkpoints" in r.stdout, r.output

    engine = connect(db_url)
    first = json.loads(witness.read_text().splitlines()[0])["tree_size"]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoints WHERE tree_size > :n"), {"n": first})
    rows = list(AuditLog(engine).entries())
    prev = rows[first - 1].entry_hash
    for e in rows[first:]:
        if e.seq == first:
            e.body = canonical_json(e.data | {"forged": True})
        e.body_sha256, e.prev_hash = body_digest(e.body), prev
        e.entry_hash = prev = e.computed_hash()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE audit_entries SET body = :b, body_sha256 = :d, prev_hash = :p, entry_hash = :h "
                    "WHERE seq = :s"
                ),
                {"b": e.body, "d": e.body_sha256, "p": e.prev_hash, "h": e.entry_hash, "s": e.seq},
            )
    engine.dispose()
    assert invoke("audit", "checkpoint", "--config", cfg).exit_code == 0  # the real key re-anchors the forgery
    assert invoke("audit", "verify", "--config", cfg, "--public-key", pub).exit_code == 0
    line = _one_error_line(
        invoke("audit", "verify", "--config", cfg, "--public-key", pub, "--trusted", witness), code=1
    )
    assert f"first bad entry {first}" in line and "trusted checkpoint" in line
    assert "not a JSON checkpoint record" in _one_error_line(
        invoke("audit", "verify", "--config", cfg, "--trusted", tmp_path / "rt.pub")
    )


def test_audit_purge_records_a_signed_entry_with_its_reason(tmp_path, db_url):
    cfg = _cfg(tmp_path, db_url)
    assert invoke("admin", "add-tenant", "acme", "--config", cfg).exit_code == 0
    r = invoke("audit", "purge", "--older-than-days", "0.0000001", "--reason", "erasure request 42", "--config", cfg)
    assert r.exit_code == 0 and "purged the content of" in r.stdout, r.output
    export = tmp_path / "x.jsonl"
    assert invoke("audit", "export", "--config", cfg, "--out", export).exit_code == 0
    lines = [json.loads(x) for x in export.read_text().splitlines()]
    purge = [x for x in lines[1:] if x["kind"] == "admin.purge"]
    assert purge and json.loads(purge[0]["body"])["reason"] == "erasure request 42"
    assert json.loads(purge[0]["body"])["authorisation"]["payloadType"].endswith("audit-purge.v1+json")
    pub = tmp_path / "rt.pub"
    key = serialization.load_pem_private_key((tmp_path / "rt.pem").read_bytes(), None)
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert invoke("audit", "verify", "--config", cfg, "--public-key", pub).exit_code == 0
    r = invoke("audit", "verify-export", export, "--public-key", pub)
    assert r.exit_code == 0, r.output


def test_runtime_key_rotation_keeps_the_checkpoint_chain(tmp_path, db_url):
    # After a rotation the last checkpoint is signed by the old key: the gateway must verify it
    # before chaining to it, so it needs the old public key, named in earlier_runtime_keys.
    cfg = _cfg(tmp_path, db_url)
    assert invoke("admin", "add-tenant", "acme", "--config", cfg).exit_code == 0
    assert invoke("audit", "checkpoint", "--config", cfg).exit_code == 0
    (tmp_path / "rt.pem").rename(tmp_path / "old.pem")
    (tmp_path / "rt.pub.pem").rename(tmp_path / "old.pub.pem")
    assert invoke("admin", "add-tenant", "beta", "--config", cfg).exit_code == 0
    r = invoke("audit", "checkpoint", "--config", cfg)  # creates the new key, then refuses the old-signed link
    assert r.exit_code != 0 and "earlier" in r.output, r.output
    cfg = _cfg(tmp_path, db_url, f'earlier_runtime_keys = ["{tmp_path / "old.pub.pem"}"]\n')
    r = invoke("audit", "checkpoint", "--config", cfg)
    assert r.exit_code == 0, r.output
    r = invoke(
        "audit",
        "verify",
        "--config",
        cfg,
        "--public-key",
        tmp_path / "old.pub.pem",
        "--public-key",
        tmp_path / "rt.pub.pem",
    )
    assert r.exit_code == 0 and "2 signed checkpoints" in r.stdout, r.output
    r = invoke("audit", "verify", "--config", cfg, "--public-key", tmp_path / "rt.pub.pem")  # the old key not pinned
    assert r.exit_code != 0 and "not a trusted key" in r.output, r.output
