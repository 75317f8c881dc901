"""Gateway processes as operators run them (`charter serve` subprocesses): kill -9 under load,
two processes on one database, the kill switch across processes, tampering caught by the CLI."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from charter.audit import AuditLog, connect
from charter.gateway.control import KillSwitch
from charter.gateway.tenants import add_tenant
from tests.servers.openai_server import ServerThread, free_port
from tests.servers.stub_upstream import build_stub

CLI = [sys.executable, "-m", "charter.cli.main"]


def _config(tmp_path: Path, db_url: str, stub_url: str) -> Path:
    p = tmp_path / "gateway.toml"
    p.write_text(f"""
constitution = "default"
[server]
database = "{db_url}"
runtime_key = "runtime.pem"
poll_seconds = 0.1
checkpoint_seconds = 1
system_prompt = "none"
[upstream]
model = "openai:{stub_url}#stub"
model_id = "charter-test"
""")
    return p


class Proc:
    def __init__(self, config: Path, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}/v1"
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        self.log = open(config.parent / f"gateway-{port}.log", "w")
        self.p = subprocess.Popen(
            CLI + ["serve", "--config", str(config), "--port", str(port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=config.parent,
        )
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(self.url + "/attestation", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.p.poll() is not None or time.time() > deadline:
                raise RuntimeError(
                    "gateway did not start: " + (config.parent / f"gateway-{port}.log").read_text()[-2000:]
                )
            time.sleep(0.2)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
        self.log.close()


@pytest.fixture
def setup(tmp_path, db_url):
    stub = ServerThread(build_stub(delay=0.002)).__enter__()
    cfg = _config(tmp_path, db_url, stub.url)
    engine = connect(db_url)
    keys = {"alice": add_tenant(engine, "alice", rate_limit_rpm=100000), "root": add_tenant(engine, "root", admin=True)}
    engine.dispose()
    procs = []
    yield cfg, keys, procs, stub
    for p in procs:
        p.stop()
    stub.__exit__(None, None, None)


def _ask(url, key, i):
    r = httpx.post(
        url + "/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        json={"model": "charter-test", "messages": [{"role": "user", "content": f"question {i}"}]},
    )
    r.raise_for_status()
    return r.json()["id"]


def _verify_cli(cfg, *extra):
    return subprocess.run(
        CLI + ["audit", "verify", "--config", str(cfg), *extra],
        capture_output=True,
        text=True,
        cwd=cfg.parent,
        env=os.environ | {"CHARTER_PROGRESS": "0"},
    )


def test_kill_9_under_load_loses_no_answered_request(setup, db_url):
    cfg, keys, procs, _ = setup
    gw = Proc(cfg, free_port())
    procs.append(gw)
    answered, stop = [], threading.Event()

    def client(k):
        i = 0
        while not stop.is_set():
            try:
                answered.append(_ask(gw.url, keys["alice"], f"{k}-{i}"))
            except (httpx.HTTPError, KeyError):
                return
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    os.kill(gw.p.pid, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(30)
    gw.p.wait(10)
    assert len(answered) > 10
    # Restart on the same database: the chain verifies and every answer the clients got is logged.
    gw2 = Proc(cfg, free_port())
    procs.append(gw2)
    log = AuditLog(connect(db_url))
    responded = {e.request_id for e in log.entries(kinds=["chat.response"])}
    assert set(answered) <= responded
    r = _verify_cli(cfg)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "audit log ok" in r.stdout


def test_two_processes_keep_one_valid_chain_and_share_the_kill_switch(setup, db_url):
    cfg, keys, procs, stub = setup
    a, b = Proc(cfg, free_port()), Proc(cfg, free_port())
    procs += [a, b]
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: _ask((a, b)[i % 2].url, keys["alice"], i), range(60)))
    assert len(set(ids)) == 60
    log = AuditLog(connect(db_url))
    assert log.verify().ok
    assert {e.request_id for e in log.entries(kinds=["chat.response"])} >= set(ids)

    # A stream on process A that lasts until something stops it (the stub streams until its client
    # leaves, capped at 120 s), so the outcome cannot depend on how fast a loaded machine gets
    # through a fixed number of tokens; the switch thrown from the CLI (a third process) stops it.
    stub.app.state.endless = True
    finished, flowing = {}, threading.Event()

    def stream():
        with httpx.stream(
            "POST",
            a.url + "/chat/completions",
            headers={"Authorization": f"Bearer {keys['alice']}"},
            json={"model": "charter-test", "stream": True, "messages": [{"role": "user", "content": "count"}]},
            timeout=60,
        ) as r:
            last = None
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    last = json.loads(line[6:])
                    if last["choices"] and last["choices"][0]["delta"].get("content"):
                        flowing.set()
            finished["t"], finished["last"] = time.time(), last

    th = threading.Thread(target=stream)
    th.start()
    assert flowing.wait(60), "the stream never started"
    r = subprocess.run(
        CLI + ["admin", "suspend", "--config", str(cfg), "--reason", "drill"],
        capture_output=True,
        text=True,
        cwd=cfg.parent,
    )
    assert r.returncode == 0, r.stderr
    th.join(60)
    assert not th.is_alive() and "t" in finished, "the stream was not stopped by the suspension"
    # Time from the moment the suspension was written (its `since`, stamped by the CLI as it
    # commits the switch; read back from the database) to the end of the stream, not from when
    # the CLI process returned: the stream outlived the switch and stopped within a few of the
    # gateways' 0.1 s polls (measured 0.07-0.12 s with two CPU hogs running; 5 s is generous).
    status = KillSwitch(connect(db_url), log).status()
    assert [s["reason"] for s in status] == ["drill"]
    since = datetime.strptime(status[0]["since"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    assert since <= finished["t"] < since + 5.0, (since, finished["t"])
    assert finished["last"]["choices"][0]["finish_reason"] == "content_filter"
    # The gateway let go of the upstream stream too (the stub saw its client leave).
    deadline = time.monotonic() + 20
    while stub.app.state.open_streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stub.app.state.open_streams == 0
    # Process B refuses new requests too.
    r = httpx.post(
        b.url + "/chat/completions",
        headers={"Authorization": f"Bearer {keys['alice']}"},
        json={"model": "charter-test", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 503


def test_endless_stub_streams_until_its_client_leaves_and_never_past_its_cap():
    """The stub behind the kill-switch test: an endless stream stops when the client goes away
    (uvicorn drops writes to a closed connection silently, so the stub must notice) and ends by
    itself at its hard cap."""
    with ServerThread(build_stub(endless=True)) as stub:
        with httpx.stream(
            "POST",
            stub.url + "/chat/completions",
            timeout=30,
            json={"model": "stub", "stream": True, "messages": [{"role": "user", "content": "go"}]},
        ) as r:
            chunks = 0
            for line in r.iter_lines():
                chunks += line.startswith("data: {")
                if chunks == 300:  # well past one pass over the text: it repeats
                    break
        assert chunks == 300
        deadline = time.monotonic() + 20
        while stub.app.state.open_streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stub.app.state.open_streams == 0
        stub.app.state.endless_cap_s = 0.3
        with httpx.stream(
            "POST",
            stub.url + "/chat/completions",
            timeout=30,
            json={"model": "stub", "stream": True, "messages": [{"role": "user", "content": "go"}]},
        ) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        events = [json.loads(line[6:]) for line in lines[:-1]]
        assert lines[-1] == "data: [DONE]" and events[-2]["choices"][0]["finish_reason"] == "length"
        assert events[-1]["usage"]["completion_tokens"] == len(events) - 2 > 20


def test_tampered_database_is_reported_with_the_first_bad_entry(setup, db_url):
    cfg, keys, procs, _ = setup
    gw = Proc(cfg, free_port())
    procs.append(gw)
    for i in range(5):
        _ask(gw.url, keys["alice"], i)
    gw.stop()
    from sqlalchemy import text

    engine = connect(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE audit_entries SET body = replace(body, 'question 3', 'question 4') WHERE kind = 'chat.request' "
                "AND body LIKE '%question 3%'"
            )
        )
        seq = (
            conn.execute(text("SELECT seq FROM audit_entries WHERE body LIKE '%question 4%' ORDER BY seq"))
            .scalars()
            .first()
        )
    r = _verify_cli(cfg, "--public-key", str(_public_key(cfg)))
    assert r.returncode == 1
    assert f"first bad entry {seq}" in " ".join(r.stderr.split())


def _public_key(cfg: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key((cfg.parent / "runtime.pem").read_bytes(), None)
    out = cfg.parent / "runtime.pub.pem"
    out.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return out
