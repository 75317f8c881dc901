"""The gateway as an attacker holding a tenant key (or none) would try it: other tenants' and the
gateway's own audit entries, revoked keys and console sessions, oversized bodies, repeated
violation reports, cross-site console posts, forged incident Markdown, and the inputs that used
to end in a 500 or echo an exception."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import select
import socket
import stat
import time

import httpx
import pytest

from charter.audit import AuditLog, connect
from charter.gateway import GatewayConfig, GatewayState, OpenAIUpstream, create_app
from charter.gateway.control import md_text, render_report
from charter.gateway.tenants import TenantDirectory, add_tenant
from tests.servers.openai_server import ServerThread
from tests.servers.stub_upstream import build_stub

CHAT = {"model": "charter-test", "messages": [{"role": "user", "content": "hi"}]}


def _base(gw) -> str:
    return gw.url.removesuffix("/v1")


def _port(gw) -> int:
    return int(gw.url.split(":")[2].split("/")[0])


def _is_openai_error(r: httpx.Response, status: int | None = None) -> dict:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    if status is not None:
        assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"] and err["type"]
    return err


# -- 6. tenant isolation and revocation ---------------------------------------------------------
def test_system_entries_and_their_proofs_are_admin_only(make_gateway):
    gw = make_gateway()
    log = AuditLog(connect(gw.db_url))
    system = [e for e in log.entries() if e.tenant is None]
    assert system, "the gateway start is a tenant-less entry"
    seq = system[0].seq
    r = httpx.get(gw.url + f"/audit/proof/{seq}", headers=gw.headers("alice"))
    err = _is_openai_error(r, 403)
    assert err["code"] == "forbidden_tenant"
    assert "entry" not in r.json()
    ok = httpx.get(gw.url + f"/audit/proof/{seq}", headers=gw.headers("root"))
    assert ok.status_code == 200 and ok.json()["entry"]["seq"] == seq
    # And alice's own entries still prove.
    rid = gw.client().chat.completions.create(**CHAT).id
    own = next(log.entries(request_id=rid))
    assert httpx.get(gw.url + f"/audit/proof/{own.seq}", headers=gw.headers("alice")).status_code == 200


def _console_login(base: str, key: str, **headers) -> httpx.Client:
    c = httpx.Client(base_url=base, follow_redirects=False, headers=headers, timeout=30)
    page = c.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    r = c.post("/console/login", data={"key": key} | ({"csrf": token.group(1)} if token else {}))
    assert r.status_code == 303 and r.headers["location"] == "/console", r.text
    return c


def _form_token(c: httpx.Client, path: str = "/console") -> str:
    r = c.get(path)
    assert r.status_code == 200, r.status_code
    return re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)


def test_revoke_tenant_ends_console_sessions_and_the_key(make_gateway):
    from tests.cli.test_cli import invoke

    gw = make_gateway()
    c = _console_login(_base(gw), gw.keys["root"])
    assert c.get("/console").status_code == 200
    r = invoke("admin", "revoke-tenant", "root", "--database", gw.db_url)
    assert r.exit_code == 0 and "revoked tenant root (1 console sessions ended)" in r.stdout, r.output
    after = c.get("/console")
    assert after.status_code == 303 and after.headers["location"] == "/console/login"
    # The revocation is in the audit log; the key stops working within the cache's TTL.
    log = AuditLog(connect(gw.db_url))
    assert [e.data["tenant"] for e in log.entries(kinds=["admin.revoke_tenant"])] == ["root"]
    deadline = time.time() + gw.state.tenants.ttl + 2
    while httpx.get(gw.url + "/models", headers=gw.headers("root")).status_code != 401:
        assert time.time() < deadline, "a revoked key kept working past the cache TTL"
        time.sleep(0.2)


def test_a_demoted_admin_loses_the_console_at_once(make_gateway):
    gw = make_gateway()
    c = _console_login(_base(gw), gw.keys["root"])
    from charter.gateway.store.schema import tenants

    engine = connect(gw.db_url)
    with engine.begin() as conn:
        conn.execute(tenants.update().where(tenants.c.name == "root").values(admin=False))
    assert c.get("/console").status_code == 303


def test_admin_api_revocation_is_immediate_in_process(make_gateway):
    gw = make_gateway()
    assert httpx.get(gw.url + "/models", headers=gw.headers("bob")).status_code == 200  # cached now
    r = httpx.delete(gw.url + "/admin/tenants/bob", headers=gw.headers("root"))
    assert r.status_code == 200 and r.json()["revoked"]
    assert _is_openai_error(httpx.get(gw.url + "/models", headers=gw.headers("bob")), 401)["code"] == "invalid_api_key"
    assert _is_openai_error(httpx.delete(gw.url + "/admin/tenants/bob", headers=gw.headers("root")), 404)
    assert _is_openai_error(httpx.delete(gw.url + "/admin/tenants/alice", headers=gw.headers("alice")), 403)


def _state(tmp_path, db_url, stub_url, tenants) -> GatewayState:
    cfg = GatewayConfig.model_validate(
        {
            "server": {
                "database": db_url,
                "runtime_key": str(tmp_path / "runtime.pem"),
                "checkpoint_seconds": 3600,
                "system_prompt": "none",
                "log_requests": False,
                "poll_seconds": 0.1,
            },
            "upstream": {"model": f"openai:{stub_url}#stub", "model_id": "charter-test"},
            "tenants": tenants,
        }
    )
    return GatewayState(cfg, upstream=OpenAIUpstream(f"openai:{stub_url}#stub", model_id="charter-test"))


def test_a_tenant_removed_from_the_config_is_revoked_at_the_next_start(tmp_path, db_url):
    keys = {n: "chk-" + secrets.token_urlsafe(16) for n in ("acme", "globex")}
    declared = [{"name": n, "key_sha256": hashlib.sha256(k.encode()).hexdigest()} for n, k in keys.items()]
    engine = connect(db_url)
    cli_key = add_tenant(engine, "made-by-cli")  # charter admin add-tenant: never revoked by the config
    engine.dispose()
    with ServerThread(build_stub()) as stub:
        first = _state(tmp_path, db_url, stub.url, declared)
        with ServerThread(create_app(first.config, state=first)) as srv:
            for k in list(keys.values()) + [cli_key]:
                assert httpx.get(srv.url + "/models", headers={"Authorization": f"Bearer {k}"}).status_code == 200
        second = _state(tmp_path, db_url, stub.url, declared[1:])  # acme's block deleted; restart
        with ServerThread(create_app(second.config, state=second)) as srv:
            assert (
                httpx.get(srv.url + "/models", headers={"Authorization": f"Bearer {keys['acme']}"}).status_code == 401
            )
            assert (
                httpx.get(srv.url + "/models", headers={"Authorization": f"Bearer {keys['globex']}"}).status_code == 200
            )
            assert httpx.get(srv.url + "/models", headers={"Authorization": f"Bearer {cli_key}"}).status_code == 200
    log = AuditLog(connect(db_url))
    revoked = [e.data for e in log.entries(kinds=["admin.revoke_tenant"])]
    assert [d["tenant"] for d in revoked] == ["acme"] and revoked[0]["source"] == "config"


def test_the_source_column_is_added_to_an_existing_database(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    con = sqlite3.connect(path)  # the tenants table as released before the column existed
    con.execute(
        "CREATE TABLE tenants (name VARCHAR(200) PRIMARY KEY, key_hash VARCHAR(64) NOT NULL UNIQUE, "
        "rate_limit_rpm INTEGER NOT NULL, admin BOOLEAN NOT NULL, created VARCHAR(40) NOT NULL)"
    )
    con.execute("INSERT INTO tenants VALUES ('old', 'ab', 60, 0, '2025-01-01')")
    con.commit()
    con.close()
    from sqlalchemy import inspect

    from charter.gateway.store import connect as gateway_connect

    engine = gateway_connect(f"sqlite:///{path}")
    gateway_connect(f"sqlite:///{path}")  # a second process starting: idempotent

    assert "source" in {c["name"] for c in inspect(engine).get_columns("tenants")}


# -- 7. limits -----------------------------------------------------------------------------------
def _read_response(s: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        part = s.recv(65536)
        if not part:
            break
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"content-length:\s*(\d+)", head, re.I)
    while m and len(body) < int(m.group(1)):
        part = s.recv(65536)
        if not part:
            break
        body += part
    return int(head.split()[1]), body


@pytest.mark.parametrize("path", ["/v1/admin/suspend", "/v1/audit/proof/1", "/v1/violations", "/console/login"])
def test_an_oversized_unauthenticated_body_is_refused_by_its_declared_length(make_gateway, path):
    gw = make_gateway()
    # 250 MB declared, nothing sent: today's code sits waiting for the body; now the answer is
    # immediate, without reading a byte of it.
    with socket.create_connection(("127.0.0.1", _port(gw)), timeout=10) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {250 * 1024 * 1024}\r\n\r\n".encode()
        )
        t0 = time.monotonic()
        status, body = _read_response(s)
    assert status == 413 and time.monotonic() - t0 < 5
    import json

    err = json.loads(body)["error"]
    assert err["code"] == "request_too_large" and err["type"] == "invalid_request_error"


def test_a_chunked_oversized_body_is_cut_off_at_the_limit(make_gateway):
    gw = make_gateway(max_body_bytes=64 * 1024)
    chunk = b"[" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", _port(gw)), timeout=10) as s:
        s.sendall(
            b"POST /v1/admin/suspend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        while sent < 64 * 1024 * 1024:
            if select.select([s], [], [], 0)[0]:
                break  # the server answered
            try:
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        status, _ = _read_response(s)
    assert status == 413
    assert sent < 16 * 1024 * 1024  # it stopped reading long before the 64 MB the client had


def test_the_invalid_key_cache_is_bounded(db_url):
    engine = connect(db_url)
    good = add_tenant(engine, "good")
    d = TenantDirectory(engine, max_known=10, max_unknown=50)
    assert d.lookup(good).name == "good"
    for _ in range(300):
        assert d.lookup("chk-" + secrets.token_hex(8)) is None
    known, unknown = d.cached()
    assert unknown == 50 and known == 1  # the flood neither grew the cache nor evicted the valid key
    assert d.lookup(good).name == "good"
    d.clear()
    assert d.cached() == (0, 0)
    engine.dispose()


def test_repeated_violation_reports_count_once(make_gateway):
    gw = make_gateway(trip_rules=[{"kind": "violation_reports", "threshold": 2, "window_seconds": 60, "scope": "all"}])
    rid = gw.client().chat.completions.create(**CHAT).id
    answers = [
        httpx.post(gw.url + "/violations", headers=gw.headers(), json={"request_id": rid, "description": "it lied"})
        for _ in range(3)
    ]
    assert not httpx.get(_base(gw) + "/healthz").json()["suspended"]  # one request reported 3 times: not 2 reports
    assert all(a.json()["incident_id"] is None for a in answers)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    assert gw.client().chat.completions.create(**CHAT).choices[0].message.content
    log = AuditLog(connect(gw.db_url))
    assert len(list(log.entries(kinds=["violation.report"]))) == 1
    # Another tenant's report of its own request is a second, distinct one: the rule trips.
    rid_bob = gw.client("bob").chat.completions.create(**CHAT).id
    r = httpx.post(gw.url + "/violations", headers=gw.headers("bob"), json={"request_id": rid_bob, "description": "x"})
    assert r.json()["incident_id"] is not None
    assert httpx.get(_base(gw) + "/healthz").json()["suspended"]


def test_a_per_tenant_trip_rule_suspends_only_that_tenant(make_gateway):
    gw = make_gateway(
        trip_rules=[{"kind": "violation_reports", "threshold": 2, "window_seconds": 60, "scope": "tenant"}]
    )
    ids = [gw.client().chat.completions.create(**CHAT).id for _ in range(2)]
    bob_id = gw.client("bob").chat.completions.create(**CHAT).id
    r = httpx.post(gw.url + "/violations", headers=gw.headers("bob"), json={"request_id": bob_id, "description": "x"})
    assert r.json()["incident_id"] is None
    first = httpx.post(gw.url + "/violations", headers=gw.headers(), json={"request_id": ids[0], "description": "x"})
    assert first.json()["incident_id"] is None  # bob's report does not count toward alice's
    second = httpx.post(gw.url + "/violations", headers=gw.headers(), json={"request_id": ids[1], "description": "x"})
    iid = second.json()["incident_id"]
    assert iid is not None
    err = _is_openai_error(httpx.post(gw.url + "/chat/completions", headers=gw.headers(), json=CHAT), 403)
    assert err["code"] == "tenant_suspended"
    assert httpx.post(gw.url + "/chat/completions", headers=gw.headers("bob"), json=CHAT).status_code == 200
    assert not httpx.get(_base(gw) + "/healthz").json()["suspended"]  # the model was not suspended
    inc = httpx.get(gw.url + f"/admin/incidents/{iid}", headers=gw.headers("root")).json()
    assert inc["incident"]["scope"] == "tenant:alice" and set(ids) <= set(inc["incident"]["trigger"]["request_ids"])
    assert bob_id not in inc["incident"]["trigger"]["request_ids"]
    r = httpx.post(gw.url + "/admin/resume", headers=gw.headers("root"), json={"tenant": "alice"})
    assert r.json()["was_suspended"]
    assert httpx.post(gw.url + "/chat/completions", headers=gw.headers(), json=CHAT).status_code == 200


# -- 8. console --------------------------------------------------------------------------------
def test_console_posts_need_the_same_origin_and_the_form_token(make_gateway):
    gw = make_gateway()
    c = _console_login(_base(gw), gw.keys["root"])
    token = _form_token(c)
    r = c.post("/console/suspend", data={"reason": "csrf", "csrf": token}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = c.post(
        "/console/suspend", data={"reason": "csrf", "csrf": token}, headers={"Referer": "http://evil.example/page"}
    )
    assert r.status_code == 403
    assert c.post("/console/suspend", data={"reason": "no token"}).status_code == 403
    assert c.post("/console/suspend", data={"reason": "bad token", "csrf": "0" * 64}).status_code == 403
    assert c.post("/console/audit/verify", data={}).status_code == 403
    assert gw.state.killswitch.status() == []  # nothing was suspended
    own = f"http://127.0.0.1:{_port(gw)}"
    r = c.post("/console/suspend", data={"reason": "drill", "csrf": token}, headers={"Origin": own})
    assert r.status_code == 303
    assert [s["reason"] for s in gw.state.killswitch.status()] == ["drill"]
    # Another session's token is not this one's.
    other = _console_login(_base(gw), gw.keys["root"])
    assert other.post("/console/resume", data={"csrf": token}).status_code == 403
    assert other.post("/console/resume", data={"csrf": _form_token(other)}).status_code == 303


def test_console_login_needs_its_form_token_and_origin(make_gateway):
    gw = make_gateway()
    c = httpx.Client(base_url=_base(gw), follow_redirects=False)
    assert c.post("/console/login", data={"key": gw.keys["root"]}).status_code == 403
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text).group(1)
    r = c.post("/console/login", data={"key": gw.keys["root"], "csrf": token}, headers={"Origin": "null"})
    assert r.status_code == 403
    fresh = httpx.Client(base_url=_base(gw), follow_redirects=False)  # the token is bound to the login cookie
    fresh.get("/console/login")
    assert fresh.post("/console/login", data={"key": gw.keys["root"], "csrf": token}).status_code == 403
    assert c.post("/console/login", data={"key": gw.keys["root"], "csrf": token}).status_code == 303


def test_console_logout_ends_the_session(make_gateway):
    gw = make_gateway()
    c = _console_login(_base(gw), gw.keys["root"])
    cookie = c.cookies.get("charter_console")
    token = _form_token(c)
    assert c.post("/console/logout", data={}).status_code == 403  # logout is a form with a token too
    r = c.post("/console/logout", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    replay = httpx.get(_base(gw) + "/console", cookies={"charter_console": cookie}, follow_redirects=False)
    assert replay.status_code == 303  # the old cookie is dead on the server, not just cleared
    kinds = [
        e.kind for e in AuditLog(connect(gw.db_url)).entries(kinds=["admin.console_login", "admin.console_logout"])
    ]
    assert kinds == ["admin.console_login", "admin.console_logout"]


def test_console_messages_cannot_be_planted_by_a_link(make_gateway):
    gw = make_gateway()
    c = _console_login(_base(gw), gw.keys["root"])
    fake = c.get("/console/audit", params={"verified": "ok: 1000000 entries verified, all is well"})
    assert "all is well" not in fake.text and 'id="verify-result"' not in fake.text
    page = c.get("/console/login", params={"error": "Your key expired: call +1 555 0100"})
    assert "555" not in page.text
    real = c.post("/console/audit/verify", data={"csrf": _form_token(c)})
    assert real.status_code == 303
    shown = c.get(real.headers["location"])
    assert re.search(r'id="verify-result">ok: \d+ entries', shown.text)
    other = _console_login(_base(gw), gw.keys["root"])  # the signed result is this session's alone
    assert 'id="verify-result"' not in other.get(real.headers["location"]).text


def test_console_security_headers_and_cookie_flags(make_gateway):
    gw = make_gateway()
    for path in ("/console/login", "/console"):
        r = httpx.get(_base(gw) + path, follow_redirects=False)
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"]
    assert "content-security-policy" not in httpx.get(gw.url + "/attestation").headers
    page = httpx.get(_base(gw) + "/console/login")
    assert "<script" not in page.text
    style = re.search(r"<style>(.*?)</style>", page.text, re.S).group(1)
    import base64

    assert (
        "'sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() + "'"
        in page.headers["content-security-policy"]
    )  # the one stylesheet the policy allows is this page's

    def login_cookie(**headers) -> str:
        c = httpx.Client(base_url=_base(gw), follow_redirects=False, headers=headers)
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text).group(1)
        c.cookies.set("charter_console_login", c.cookies.get("charter_console_login"))
        r = c.post("/console/login", data={"key": gw.keys["root"], "csrf": token})
        assert r.status_code == 303
        return [v for v in r.headers.get_list("set-cookie") if v.startswith("charter_console=")][0].lower()

    plain = login_cookie()
    assert "httponly" in plain and "samesite=strict" in plain and "secure" not in plain
    # Behind a TLS proxy on this host (uvicorn believes X-Forwarded-Proto from 127.0.0.1).
    assert "secure" in login_cookie(**{"X-Forwarded-Proto": "https"})


def test_incident_markdown_cannot_be_forged_through_a_description(make_gateway):
    gw = make_gateway(trip_rules=[{"kind": "violation_reports", "threshold": 1, "window_seconds": 60}])
    rid = gw.client().chat.completions.create(**CHAT).id
    forged = "ok |\n| 999 | 2020-01-01 | admin.resume | root | x | all clear |\n# Incident closed\n```\n<img src=x>"
    iid = httpx.post(
        gw.url + "/violations", headers=gw.headers(), json={"request_id": rid, "description": forged}
    ).json()["incident_id"]
    rep = httpx.get(gw.url + f"/admin/incidents/{iid}", headers=gw.headers("root")).json()
    md = rep["markdown"]
    lines = md.splitlines()
    assert not any(line.startswith("| 999") for line in lines)
    assert sum(1 for line in lines if line.startswith("# ")) == 1  # only the real title
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| seq")]
    assert len(table) == len(rep["timeline"])  # one row per event, none injected
    assert "<img" not in md and "```\n<" not in md
    row = next(line for line in table if "violation.report" in line)
    assert row.count(" | ") == 5  # six cells, the description's pipes escaped
    assert render_report(rep) == md


def test_md_text_escapes_table_and_block_syntax():
    assert md_text("a|b") == "a\\|b"
    assert md_text("x\ny\r\nz\u2028w") == "x y z w"
    assert md_text("# head") == "\\# head" and md_text("  ## h") == "  \\## h"
    assert md_text("`code`") == "\\`code\\`"
    assert md_text("<script>") == "&lt;script>"
    assert md_text(None) == ""
    # No phishing link or tracking image from a violation description.
    assert (
        md_text("![x](https://evil/b.png) [Resume](https://evil/p)")
        == "\\!\\[x\\](https://evil/b.png) \\[Resume\\](https://evil/p)"
    )


# -- 9. no 500s, no echoed exceptions ---------------------------------------------------------------
LEAKS = (
    "Traceback",
    "Error:",
    "sqlalchemy",
    "psycopg",
    "OverflowError",
    "RecursionError",
    "exceeds",
    "int too big",
    "SECRET-TRACE",
)


def _no_leak(r: httpx.Response) -> None:
    assert not any(s in r.text for s in LEAKS), r.text


def test_former_500s_are_openai_style_4xx(make_gateway):
    gw = make_gateway(compliance={"profiles": ["cac-genai"]})  # tracks end-user sessions in the database
    h = gw.headers() | {"Content-Type": "application/json"}
    huge = "99999999999999999999999"
    for r in (
        httpx.get(gw.url + f"/audit/proof/{huge}", headers=gw.headers()),
        httpx.get(gw.url + f"/audit/proof/{huge}", headers=gw.headers("root")),
        httpx.get(gw.url + f"/admin/incidents/{huge}", headers=gw.headers("root")),
        httpx.post(gw.url + "/chat/completions", headers=h, content=b"[" * 200_000),
        httpx.post(
            gw.url + "/chat/completions", headers=h, content=b'{"model": "charter-test", "messages": ' + b"[" * 200_000
        ),
        httpx.post(gw.url + "/chat/completions", headers=gw.headers() | {"X-Charter-Session": "s" * 600}, json=CHAT),
        httpx.post(gw.url + "/chat/completions", headers=gw.headers(), json=CHAT | {"user": "u" * 600}),
        httpx.post(gw.url + "/chat/completions", headers=gw.headers(), json=CHAT | {"seed": 10**40}),
        httpx.post(gw.url + "/chat/completions", headers=gw.headers(), json=CHAT | {"seed": 2**63}),
        httpx.post(gw.url + "/admin/suspend", headers=gw.headers("root"), json={"model": "m" * 300}),
    ):
        _is_openai_error(r)
        assert r.status_code in (400, 403, 404, 422), r.text
        _no_leak(r)
    c = _console_login(_base(gw), gw.keys["root"])
    r = c.get(f"/console/incidents/{huge}")
    assert 400 <= r.status_code < 500
    _no_leak(r)
    # A session id that fits is still served.
    ok = httpx.post(gw.url + "/chat/completions", headers=gw.headers() | {"X-Charter-Session": "s" * 256}, json=CHAT)
    assert ok.status_code == 200
    for seed in (-(2**63), 2**63 - 1):  # OpenAI's seed range is int64
        assert (
            httpx.post(gw.url + "/chat/completions", headers=gw.headers(), json=CHAT | {"seed": seed}).status_code
            == 200
        )


def test_upstream_failures_do_not_echo_the_exception(make_gateway):
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    broken = FastAPI()

    @broken.post("/v1/chat/completions")
    async def fail():
        return PlainTextResponse("Traceback (most recent call last): SECRET-TRACE password=hunter2", status_code=500)

    gw = make_gateway()
    with ServerThread(broken) as up:
        gw.state.upstream = OpenAIUpstream(f"openai:{up.url}#stub", model_id="charter-test")
        r = httpx.post(gw.url + "/chat/completions", headers=gw.headers(), json=CHAT)
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"
        _no_leak(r)
        assert "hunter2" not in r.text
        s = httpx.post(gw.url + "/chat/completions", headers=gw.headers(), json=CHAT | {"stream": True})
        assert s.status_code == 200 and "hunter2" not in s.text and "SECRET-TRACE" not in s.text
        assert '"finish_reason":"error"' in s.text
    # The detail is kept for the operator, in the audit log.
    log = AuditLog(connect(gw.db_url))
    assert any("SECRET-TRACE" in (e.body or "") for e in log.entries(kinds=["chat.error"]))


def test_sqlite_database_files_are_created_private(tmp_path):
    path = tmp_path / "private.db"
    old = os.umask(0o022)  # the usual umask, which made them 0644
    try:
        engine = connect(f"sqlite:///{path}")
        AuditLog(engine).append("test", {"x": 1})
        files = [path] + [p for p in (tmp_path / "private.db-wal", tmp_path / "private.db-shm") if p.exists()]
        assert len(files) == 3  # WAL mode: both side files exist while the engine is open
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        engine.dispose()
    finally:
        os.umask(old)


def test_a_tampered_log_is_a_4xx_not_a_500(make_gateway):
    # Under a rewrite below the last checkpoint the gateway refuses to sign or prove (VerificationError
    # from AuditLog.checkpoint); that must reach clients as a 4xx without the verifier's details.
    from sqlalchemy import text

    gw = make_gateway()
    assert httpx.post(gw.url + "/chat/completions", headers=gw.headers(), json=CHAT).status_code == 200
    assert httpx.post(gw.url + "/admin/audit/checkpoint", headers=gw.headers("root")).status_code == 200
    assert httpx.post(gw.url + "/chat/completions", headers=gw.headers(), json=CHAT).status_code == 200
    log = AuditLog(connect(gw.db_url))
    last = log.size() - 1
    with log.engine.begin() as conn:  # delete an entry appended since the checkpoint: the chain has a gap
        conn.execute(text("DELETE FROM audit_entries WHERE seq = :s"), {"s": last - 1})
    for r in (
        httpx.post(gw.url + "/admin/audit/checkpoint", headers=gw.headers("root")),
        httpx.get(gw.url + "/audit/proof/1", headers=gw.headers("root")),
    ):
        err = _is_openai_error(r, 409)
        assert err["code"] == "audit_log_unverified" and "entry" not in r.text


def test_nul_characters_are_a_400_on_every_database(make_gateway):
    # PostgreSQL text columns refuse NUL; the driver's DataError must not surface as a 500.
    gw = make_gateway()
    for r in (
        httpx.get(gw.url + "/audit/entries?since=%00", headers=gw.headers()),
        httpx.get(gw.url + "/audit/entries?request_id=a%00b", headers=gw.headers()),
        httpx.post(gw.url + "/violations", headers=gw.headers(), json={"request_id": "a\u0000b", "description": "x"}),
        httpx.delete(gw.url + "/admin/tenants/a%00b", headers=gw.headers("root")),
        httpx.post(gw.url + "/admin/suspend", headers=gw.headers("root"), json={"model": "a\u0000b"}),
    ):
        assert r.status_code < 500, r.text  # SQLite stores NUL (200/404); PostgreSQL refuses it (400)
        if r.status_code >= 400:
            _is_openai_error(r)
        if gw.db_url.startswith("postgresql"):
            assert r.status_code == 400 and r.json()["error"]["code"] in ("invalid_value", None), r.text
        _no_leak(r)
    assert httpx.post(gw.url + "/chat/completions", headers=gw.headers(), json=CHAT).status_code == 200
