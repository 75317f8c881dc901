"""The gateway in front of a local transformers model (a tiny random one): real token streaming,
sealed-model enforcement and attestation."""

import shutil

import httpx
import pytest

from charter.errors import InputError, VerificationError
from charter.gateway import GatewayConfig, GatewayState, create_app
from charter.gateway.tenants import add_tenant
from charter.provenance import SealConfig, Sealer, generate_keypair
from tests.servers.openai_server import ServerThread

PASS = b"gateway-test-passphrase"


@pytest.fixture(scope="module")
def sealed_model(tmp_path_factory, tiny_model_dir):
    d = tmp_path_factory.mktemp("gw-sealed")
    priv, pub = generate_keypair(d / "keys", PASS)
    model = d / "model"
    shutil.copytree(tiny_model_dir, model)
    Sealer(SealConfig(model_dir=str(model), constitution="default", key=str(priv)), PASS).seal()
    _, other = generate_keypair(d / "other", b"x")
    return model, pub, other


def _config(tmp_path, model, require_seal=None, **server):
    return GatewayConfig.model_validate({
        "server": {"database": f"sqlite:///{tmp_path / 'a.db'}", "runtime_key": str(tmp_path / "rt.pem"),
                   "system_prompt": "none", "log_requests": False} | server,
        "upstream": {"model": f"hf:{model}", "model_id": "tiny", "max_new_tokens": 12, "temperature": 0}
        | ({"require_seal": str(require_seal)} if require_seal else {})})


def test_streams_tokens_from_a_local_model_and_attests_its_seal(tmp_path, sealed_model):
    model, pub, _ = sealed_model
    state = GatewayState(_config(tmp_path, model, pub))
    assert state.attestation.verified and state.attestation.statement_digest
    key = add_tenant(state.engine, "t")
    with ServerThread(create_app(state.config, state=state)) as srv:
        from openai import OpenAI

        client = OpenAI(base_url=srv.url, api_key=key, max_retries=0)
        chunks = list(client.chat.completions.create(model="tiny", stream=True, messages=[{"role": "user", "content": "hello"}]))
        deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert len(deltas) > 1  # token by token, not one blob
        raw = client.chat.completions.with_raw_response.create(model="tiny", messages=[{"role": "user", "content": "hello"}])
        assert raw.headers["x-charter-statement-digest"] == f"sha256:{state.attestation.statement_digest}"
        assert raw.parse().usage.completion_tokens > 0
        att = httpx.get(srv.url + "/attestation").json()
        assert att["sealed"] and att["verified_at_start"] and att["statement_envelope"]["payloadType"]


def test_require_seal_refuses_unsealed_tampered_or_foreign_models(tmp_path, sealed_model, tiny_model_dir):
    model, pub, other = sealed_model
    with pytest.raises((InputError, VerificationError), match="not sealed"):
        GatewayState(_config(tmp_path, tiny_model_dir, pub))
    with pytest.raises(VerificationError):
        GatewayState(_config(tmp_path, model, other))
    tampered = tmp_path / "tampered"
    shutil.copytree(model, tampered)
    (tampered / "config.json").write_text((tampered / "config.json").read_text().replace("}", ', "x": 1}', 1))
    with pytest.raises(VerificationError, match="config.json"):
        GatewayState(_config(tmp_path, tampered, pub))


def test_a_constitution_other_than_the_sealed_one_is_refused(tmp_path, sealed_model):
    model, pub, _ = sealed_model
    cfg = _config(tmp_path, model, pub).model_copy(update={"constitution": "cai-2022"})
    with pytest.raises(InputError, match="not the one the model was sealed with"):
        GatewayState(cfg)
