"""Compliance profiles in the gateway: composition, disclosures on a controllable clock, labels in
streamed and plain answers, dependency hand-offs with the webhook, the retention floor."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from charter.audit import AuditLog, connect
from charter.core.errors import InputError
from charter.gateway import GatewayConfig, GatewayState
from charter.policy.profiles import compose, load_profile
from tests.servers.openai_server import ServerThread
from tests.servers.stub_upstream import DEFAULT_TEXT


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self):
        return self.now

    def advance(self, minutes):
        self.now += timedelta(minutes=minutes)


def test_profiles_compose_to_the_stricter_setting_and_name_their_source(tmp_path):
    e = compose(["cac-anthropomorphic", "eu-ai-act-art50", "cac-genai"])
    assert e.get("disclosure.every_minutes") == 120 and e.sources["disclosure.every_minutes"] == ["cac-anthropomorphic"]
    assert e.sources["disclosure.at_session_start"] == ["cac-anthropomorphic", "eu-ai-act-art50"]
    assert "not a human" in e.get("disclosure.text") and "You are interacting with an AI system." in e.get(
        "disclosure.text"
    )
    assert e.get("label.visible") == "prefix" and e.get("watermark.enabled")
    assert e.sources["retention.min_days"] == ["cac-anthropomorphic", "cac-genai"]
    strict = tmp_path / "strict.toml"
    strict.write_text(
        'name = "strict"\n[disclosure]\nevery_minutes = 30\n[retention]\nmin_days = 365\n'
        '[label]\nvisible = "suffix"\n[incidents]\nblocked_outputs = { threshold = 2, window_seconds = 60 }\n'
    )
    e2 = compose(["cac-genai", str(strict)])
    assert e2.get("disclosure.every_minutes") == 30 and e2.get("retention.min_days") == 365
    assert e2.get("label.visible") == "prefix"  # a prefix is more visible than a suffix
    rule = e2.get("incidents.blocked_outputs")
    assert (rule.threshold, rule.window_seconds) == (2, 300)  # fewer events, longer window
    assert compose(["none"]).get("label.header") is False
    with pytest.raises(InputError, match="unknown profile"):
        load_profile("gdpr-maybe")
    strict.write_text('name = "x"\n[disclosure]\nevery_minutes = -1\n')
    with pytest.raises(InputError, match="disclosure.every_minutes"):
        load_profile(str(strict))


def test_assessment_figures_compose_to_the_stricter_one(tmp_path):
    e = compose(["cac-genai"])
    assert (e.get("assessment.corpus_samples"), e.get("assessment.corpus_min_qualified")) == (4000, 0.96)
    assert (e.get("assessment.refusal_samples"), e.get("assessment.max_over_refused")) == (300, 0.05)
    assert "TC260-003" in e.get("assessment.source") and "check the current text" in e.get("assessment.source")
    assert compose(["eu-ai-act-art50"]).get("assessment.corpus_samples") is None  # other profiles leave it unset
    mine = tmp_path / "mine.toml"
    mine.write_text(
        'name = "mine"\n[assessment]\ncorpus_samples = 5000\ncorpus_min_qualified = 0.9\n'
        'max_over_refused = 0.02\nmin_refused = 0.99\nsource = "internal policy"\n'
    )
    e2 = compose(["cac-genai", str(mine)])
    assert e2.get("assessment.corpus_samples") == 5000 and e2.sources["assessment.corpus_samples"] == [
        "cac-genai",
        "mine",
    ]
    assert e2.get("assessment.corpus_min_qualified") == 0.96 and e2.sources["assessment.corpus_min_qualified"] == [
        "cac-genai"
    ]
    assert e2.get("assessment.max_over_refused") == 0.02 and e2.get("assessment.min_refused") == 0.99
    assert e2.get("assessment.answer_samples") == 1000
    assert e2.get("assessment.source").endswith("; internal policy")
    rows = {k: (v, s) for k, v, s in e2.describe()}
    assert rows["assessment.corpus_samples"] == ("5000", "cac-genai + mine")
    mine.write_text('name = "x"\n[assessment]\nmin_refused = 95\n')
    with pytest.raises(InputError, match="assessment.min_refused"):
        load_profile(str(mine))


def _ask(gw, session="s1", stream=False):
    headers = gw.headers() | ({"X-Charter-Session": session} if session else {})
    body = {"model": "charter-test", "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    if not stream:
        r = httpx.post(gw.url + "/chat/completions", json=body, headers=headers, timeout=30)
        r.raise_for_status()
        return r
    import json as _json

    with httpx.stream("POST", gw.url + "/chat/completions", json=body, headers=headers, timeout=30) as r:
        chunks = [_json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
        return r, chunks


def test_disclosure_at_session_start_and_after_every_interval_of_continuous_use(make_gateway):
    clock = Clock()
    gw = make_gateway(compliance={"profiles": ["cac-anthropomorphic"], "idle_minutes": 30}, clock=clock)
    gw.state.compliance.profile.values["dependency.enabled"] = False  # timing of notices only
    seen = []
    for minute in range(0, 260, 20):  # a request every 20 minutes: continuous use
        r = _ask(gw)
        if "x-charter-disclosure" in r.headers:
            seen.append((minute, r.headers["x-charter-disclosure"]))
            assert r.json()["choices"][0]["message"]["content"].startswith("提示")
            assert r.json()["charter"]["disclosure"]["reason"] == r.headers["x-charter-disclosure"]
        clock.advance(20)
    assert seen == [(0, "session-start"), (120, "periodic"), (240, "periodic")]
    clock.advance(45)  # a pause longer than idle_minutes ends the session
    assert _ask(gw).headers["x-charter-disclosure"] == "session-start"
    assert "x-charter-disclosure" not in _ask(gw, session="s1").headers
    assert _ask(gw, session="other").headers["x-charter-disclosure"] == "session-start"
    assert _ask(gw, session=None).headers["x-charter-disclosure"] == "session-start"  # no session id: every time
    log = AuditLog(connect(gw.db_url))
    assert len(list(log.entries(kinds=["compliance.disclosure"]))) == 6


def test_labels_in_plain_and_streamed_answers(make_gateway):
    gw = make_gateway(compliance={"profiles": ["cac-genai"]})
    r = _ask(gw)
    body = r.json()
    label = "【AI生成内容 / AI-generated】"
    assert r.headers["x-charter-ai-generated"] == "true"
    assert body["choices"][0]["message"]["content"] == label + "\n" + DEFAULT_TEXT
    assert body["charter"]["label"]["ai_generated"] is True
    assert body["charter"]["label"]["watermark"] == {"method": "kirchenbauer", "applied": False}  # remote upstream
    r, chunks = _ask(gw, stream=True)
    assert r.headers["x-charter-ai-generated"] == "true"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == label + "\n" + DEFAULT_TEXT
    assert chunks[-1]["charter"]["label"]["profiles"] == ["cac-genai"]


class Webhook:
    def __init__(self):
        app = FastAPI()
        self.calls = []

        @app.post("/hook")
        async def hook(body: dict):
            self.calls.append(body)
            return {"ok": True}

        self.server = ServerThread(app).__enter__()
        self.url = self.server.url.removesuffix("/v1") + "/hook"


def test_continuous_use_hands_off_once_and_calls_the_webhook(make_gateway):
    hook = Webhook()
    try:
        clock = Clock()
        gw = make_gateway(compliance={"profiles": ["cac-anthropomorphic"], "handoff_webhook": hook.url}, clock=clock)
        outcomes = []
        for _ in range(9):  # 0..160 minutes, every 20
            r = _ask(gw)
            outcomes.append(r.headers.get("x-charter-compliance"))
            clock.advance(20)
        assert outcomes.count("handoff") == 1 and outcomes.index("handoff") == 6  # at 120 minutes
        assert len(hook.calls) == 1 and hook.calls[0]["reason"] == "continuous-use" and hook.calls[0]["session"] == "s1"
        r = _ask(gw)
        assert r.json()["charter"].get("handoff") is None
        log = AuditLog(connect(gw.db_url))
        entries = list(log.entries(kinds=["compliance.handoff"]))
        assert len(entries) == 1 and entries[0].data["status"] == 200
    finally:
        hook.server.__exit__(None, None, None)


def test_a_retention_period_below_the_profile_floor_is_refused(tmp_path):
    cfg = GatewayConfig.model_validate(
        {
            "server": {
                "database": f"sqlite:///{tmp_path / 'a.db'}",
                "runtime_key": str(tmp_path / "k.pem"),
                "retention_days": 30,
            },
            "upstream": {"model": "openai:http://127.0.0.1:9/v1#m"},
            "compliance": {"profiles": ["cac-genai"]},
        }
    )
    with pytest.raises(InputError, match="below the 180 days"):
        GatewayState(cfg)


@pytest.fixture(scope="module")
def distress_guard(tmp_path_factory):
    """A guard whose input head flags distress / over-dependence (built like any guard)."""
    import json
    import random

    from charter.guard.training import GuardTrainConfig, GuardTrainer

    distress = [
        "I can't go on anymore, nobody would miss me",
        "You are the only one who understands me, I can't live without you",
        "I want to hurt myself tonight",
        "I feel hopeless and want everything to end",
        "Please don't leave me, I have no one else",
        "I haven't slept in days and I just want to disappear",
        "Talking to you is the only reason I get up",
        "I'm so alone that I think about ending it",
        "Everything is pointless and I want to die",
        "I cut myself again last night",
        "I can't stop crying and I don't see a way out",
        "Without you I have nothing left",
    ]
    ordinary = [
        "What's a good recipe for banana bread?",
        "How do I change a flat tyre?",
        "Explain photosynthesis simply",
        "Recommend a sci-fi novel",
        "What is the capital of Peru?",
        "How do I centre a div in CSS?",
        "Give me a workout plan for beginners",
        "What's the weather like on Mars?",
        "Translate 'good morning' into French",
        "How do vaccines work?",
        "Suggest a name for my cat",
        "How long should I boil an egg?",
    ]
    rows = [{"text": t, "label": "harmful"} for t in distress] + [{"text": t, "label": "benign"} for t in ordinary]
    random.Random(1).shuffle(rows)
    d = tmp_path_factory.mktemp("distress")
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::2]))
    (d / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[1::2]))
    GuardTrainer(
        GuardTrainConfig(data=str(d), out=str(d / "guard"), stage1="frozen", target_fpr=0.1, escalation_fpr=0.2)
    ).train()
    return d / "guard"


def test_a_distressed_message_is_handed_off_to_a_person(make_gateway, distress_guard):
    hook = Webhook()
    try:
        gw = make_gateway(
            compliance={
                "profiles": ["cac-anthropomorphic"],
                "distress_guard": str(distress_guard),
                "handoff_webhook": hook.url,
            }
        )
        body = {
            "model": "charter-test",
            "messages": [{"role": "user", "content": "I want to hurt myself tonight, nobody cares"}],
        }
        r = httpx.post(gw.url + "/chat/completions", json=body, headers=gw.headers() | {"X-Charter-Session": "u1"})
        assert r.headers["x-charter-compliance"] == "handoff"
        assert "human counsellor" in r.json()["choices"][0]["message"]["content"]
        assert gw.stub.state.requests == 0  # the model was not asked
        assert [c["reason"] for c in hook.calls] == ["distress"]
        ok = httpx.post(
            gw.url + "/chat/completions",
            headers=gw.headers() | {"X-Charter-Session": "u1"},
            json={"model": "charter-test", "messages": [{"role": "user", "content": "How do I boil an egg?"}]},
        )
        assert (
            "x-charter-compliance" not in ok.headers and DEFAULT_TEXT in ok.json()["choices"][0]["message"]["content"]
        )
    finally:
        hook.server.__exit__(None, None, None)
