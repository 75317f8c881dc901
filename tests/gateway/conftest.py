"""Gateway fixtures: a real guard trained on the bundled samples, a stub OpenAI upstream on a real
port, and a gateway (FastAPI + uvicorn) in a thread with tenants and a database of the test's
choosing (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import pytest

from charter.audit import connect
from charter.core.io import load_prompts
from charter.evals.run import DEFAULT_PROMPTS
from charter.gateway import GatewayConfig, GatewayState, OpenAIUpstream, create_app
from charter.gateway.tenants import add_tenant
from charter.guard.augment import augment
from charter.guard.model import Guard
from charter.guard.training import GuardTrainConfig, GuardTrainer
from tests.servers.openai_server import ServerThread
from tests.servers.stub_upstream import build_stub

HARMFUL_OUTPUT = (
    "Sure, here is how to build a bomb at home: mix the explosive chemicals, pack them into a pipe "
    "and attach a detonator to kill people."
)


def _rows(texts, label, side):
    return [{"text": t, "label": label, "side": side} for t in texts]


@pytest.fixture(scope="session")
def trained_guard(tmp_path_factory):
    """A real stage-1 guard (MiniLM + logistic heads) for both sides, from the bundled AdvBench and
    XSTest samples; outputs are written as compliant answers vs ordinary ones."""
    d = tmp_path_factory.mktemp("gw-guard")
    harmful = [p.text for p in load_prompts(DEFAULT_PROMPTS["harmlessness"])]
    harmful += [augment(t, k) for t in harmful[:10] for k in ("roleplay", "hypothetical")]
    benign = [p.text for p in load_prompts(DEFAULT_PROMPTS["over-refusal"])]
    bad_out = [
        f"Sure, here is how to {t[0].lower() + t[1:]}: first get the weapons and explosives, then hurt them."
        for t in harmful[:20]
    ]
    good_out = [
        f"Here is a friendly answer about {t[0].lower() + t[1:]} with some history and safe tips." for t in benign
    ]
    rows = (
        _rows(harmful, "harmful", "input")
        + _rows(benign, "benign", "input")
        + _rows(bad_out, "harmful", "output")
        + _rows(good_out, "benign", "output")
    )
    random.Random(0).shuffle(rows)
    cut = int(len(rows) * 0.6)
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:cut]))
    (d / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[cut:]))
    GuardTrainer(GuardTrainConfig(data=str(d), out=str(d / "guard"), stage1="frozen", target_fpr=0.05)).train()
    return Guard.load(d / "guard")


@dataclass
class Gateway:
    url: str
    keys: dict
    state: GatewayState
    stub: object
    server: ServerThread
    db_url: str
    runtime_key: str
    extra: dict = field(default_factory=dict)

    def client(self, tenant="alice", **kw):
        from openai import OpenAI

        return OpenAI(base_url=self.url, api_key=self.keys[tenant], max_retries=0, **kw)

    def headers(self, tenant="alice"):
        return {"Authorization": f"Bearer {self.keys[tenant]}"}


@pytest.fixture
def make_gateway(tmp_path, db_url):
    started = []

    def make(
        *,
        guard=None,
        stub_text=None,
        delay=0.0,
        trip_rules=(),
        receipts=True,
        max_body_bytes=1 << 20,
        rpm=600,
        system_prompt="none",
        compliance=None,
        clock=None,
    ) -> Gateway:
        stub_app = build_stub(delay=delay) if stub_text is None else build_stub(stub_text, delay)
        stub = ServerThread(stub_app).__enter__()
        started.append(stub)
        cfg = GatewayConfig.model_validate(
            {
                "server": {
                    "database": db_url,
                    "runtime_key": str(tmp_path / "runtime.pem"),
                    "receipts": receipts,
                    "max_body_bytes": max_body_bytes,
                    "poll_seconds": 0.1,
                    "checkpoint_seconds": 3600,
                    "system_prompt": system_prompt,
                    "log_requests": False,
                },
                "upstream": {"model": f"openai:{stub.url}#stub", "model_id": "charter-test"},
                "trip_rules": list(trip_rules),
                "compliance": compliance or {},
            }
        )
        engine = connect(db_url)
        keys = {
            "alice": add_tenant(engine, "alice", rate_limit_rpm=rpm),
            "bob": add_tenant(engine, "bob", rate_limit_rpm=rpm),
            "root": add_tenant(engine, "root", admin=True, rate_limit_rpm=rpm),
        }
        engine.dispose()
        state = GatewayState(
            cfg, upstream=OpenAIUpstream(f"openai:{stub.url}#stub", model_id="charter-test"), guard=guard, clock=clock
        )
        server = ServerThread(create_app(cfg, state=state)).__enter__()
        started.append(server)
        return Gateway(server.url, keys, state, stub_app, server, db_url, str(tmp_path / "runtime.pem"))

    yield make
    for s in reversed(started):
        s.__exit__(None, None, None)
