"""Property-based requests against the gateway's OpenAPI-described endpoints: whatever the body,
headers or parameters, the answer is a 2xx or an OpenAI-style 4xx, never a 5xx."""

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=12), c, max_size=4)),
    max_leaves=12,
)
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "assistant", "tool", "nobody"]),
        "content": st.one_of(st.text(max_size=60), json_values),
    }
)
chat_body = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"model": st.sampled_from(["charter-test", "other", ""]), "messages": st.lists(message, max_size=3)},
        optional={
            "stream": json_values,
            "temperature": json_values,
            "top_p": json_values,
            "max_tokens": json_values,
            "n": json_values,
            "stop": json_values,
            "seed": json_values,
            "stream_options": json_values,
            "user": json_values,
        },
    ),
)


@pytest.fixture
def gw(make_gateway):
    return make_gateway(max_body_bytes=8192)


def _check(r: httpx.Response):
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        err = r.json()["error"]
        assert isinstance(err["message"], str) and err["type"]


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=chat_body, key=st.sampled_from(["alice", "root", None, "junk"]))
def test_chat_completions_never_5xx(gw, body, key):
    headers = {"Content-Type": "application/json"}
    if key in gw.keys:
        headers["Authorization"] = f"Bearer {gw.keys[key]}"
    elif key:
        headers["Authorization"] = key
    with httpx.Client(timeout=30) as c:
        r = c.post(gw.url + "/chat/completions", content=json.dumps(body, allow_nan=False), headers=headers)
    _check(r)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(["/audit/entries", "/admin/status", "/admin/incidents", "/models", "/attestation"]),
    params=st.dictionaries(
        st.sampled_from(["tenant", "since", "until", "limit", "request_id"]), st.text(max_size=50), max_size=3
    ),
    key=st.sampled_from(["alice", "root", None]),
)
def test_get_endpoints_never_5xx(gw, path, params, key):
    headers = {"Authorization": f"Bearer {gw.keys[key]}"} if key else {}
    r = httpx.get(gw.url + path, params=params, headers=headers, timeout=30)
    _check(r)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(["/admin/suspend", "/admin/resume", "/violations", "/admin/incidents/1", "/audit/proof/0"]),
    body=json_values,
    raw=st.binary(max_size=40),
)
def test_other_endpoints_never_5xx(gw, path, body, raw):
    for content in (json.dumps(body, allow_nan=False).encode(), raw):
        r = httpx.post(
            gw.url + path,
            content=content,
            headers={"Authorization": f"Bearer {gw.keys['alice']}", "Content-Type": "application/json"},
            timeout=30,
        )
        _check(r)
