"""The gateway in front of a local transformers model (a tiny random one): real token streaming,
sealed-model enforcement and attestation."""

import base64
import json
import shutil

import httpx
import pytest

from charter.core.errors import InputError, VerificationError
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
    return GatewayConfig.model_validate(
        {
            "server": {
                "database": f"sqlite:///{tmp_path / 'a.db'}",
                "runtime_key": str(tmp_path / "rt.pem"),
                "system_prompt": "none",
                "log_requests": False,
            }
            | server,
            "upstream": {"model": f"hf:{model}", "model_id": "tiny", "max_new_tokens": 12, "temperature": 0}
            | ({"require_seal": str(require_seal)} if require_seal else {}),
        }
    )


def test_streams_tokens_from_a_local_model_and_attests_its_seal(tmp_path, sealed_model):
    model, pub, _ = sealed_model
    state = GatewayState(_config(tmp_path, model, pub))
    assert state.attestation.verified and state.attestation.statement_digest
    key = add_tenant(state.engine, "t")
    with ServerThread(create_app(state.config, state=state)) as srv:
        from openai import OpenAI

        client = OpenAI(base_url=srv.url, api_key=key, max_retries=0)
        chunks = list(
            client.chat.completions.create(model="tiny", stream=True, messages=[{"role": "user", "content": "hello"}])
        )
        deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert len(deltas) > 1  # token by token, not one blob
        raw = client.chat.completions.with_raw_response.create(
            model="tiny", messages=[{"role": "user", "content": "hello"}]
        )
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


def _receipt(raw) -> dict:
    return json.loads(base64.b64decode(raw.headers["x-charter-receipt"]))


def _receipt_body(raw) -> dict:
    return json.loads(base64.b64decode(json.loads(base64.b64decode(raw.headers["x-charter-receipt"]))["payload"]))


def _forge_unsigned_seal(model) -> None:
    """A charter-seal/ written by hand: a statement with no signature at all."""
    seal = model / "charter-seal"
    shutil.rmtree(seal, ignore_errors=True)
    seal.mkdir()
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://charter.dev/provenance/constitutional-training/v1",
        "predicate": {"constitution": {"name": "charter-default", "version": "1.0.0"}},
    }
    (seal / "provenance.dsse.json").write_text(
        json.dumps(
            {
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [],
                "payload": base64.b64encode(json.dumps(statement).encode()).decode(),
            }
        )
    )


@pytest.mark.parametrize("forgery", ["signed by another key", "unsigned statement"])
def test_without_require_seal_a_seal_beside_the_weights_is_never_named(forgery, tmp_path, sealed_model):
    """Receipts and X-Charter-Statement-Digest say `unverified`, never the digest of a charter-seal/
    nobody verified; /v1/attestation shows it apart, marked verified: false."""
    from charter.audit import AuditLog
    from charter.provenance import verify_receipt
    from charter.provenance.seal import unverified_statement
    from charter.provenance.statement import statement_digest

    model, _, _ = sealed_model
    forged = tmp_path / "forged"
    shutil.copytree(model, forged)
    if forgery == "signed by another key":
        attacker, _ = generate_keypair(tmp_path / "attacker", PASS)
        Sealer(
            SealConfig(model_dir=str(forged), constitution="default", key=str(attacker), overwrite=True), PASS
        ).seal()
    else:
        _forge_unsigned_seal(forged)
    digest = statement_digest(unverified_statement(forged)[1])
    state = GatewayState(_config(tmp_path, forged, receipts=True))
    assert state.attestation.sealed and not state.attestation.verified and state.attestation.header == "unverified"
    key = add_tenant(state.engine, "t")
    with ServerThread(create_app(state.config, state=state)) as srv:
        from openai import OpenAI

        client = OpenAI(base_url=srv.url, api_key=key, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="tiny", messages=[{"role": "user", "content": "hello"}]
        )
        assert raw.headers["x-charter-statement-digest"] == "unverified"
        body = _receipt_body(raw)
        assert body["statement_digest"] == "unverified"
        assert digest not in raw.text and all(digest not in v for v in raw.headers.values())
        models = client.models.with_raw_response.list()
        assert digest not in models.text
        att = httpx.get(srv.url + "/attestation").json()
        assert att["seal"] == "unverified" and att["statement_digest"] is None and att["root_digest"] is None
        assert att["statement_envelope"] is None
        assert att["unverified"]["verified"] is False and att["unverified"]["statement_digest"] == digest
        runtime_pub = tmp_path / "runtime.pub.pem"
        runtime_pub.write_text(att["runtime_public_key"])
    start = [e for e in AuditLog(state.engine).entries() if e.kind == "gateway.start"]
    assert start and digest not in (start[-1].body or "")
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(_receipt(raw)))
    assert verify_receipt(receipt, runtime_pub)["statement_digest"] == "unverified"
    with pytest.raises(VerificationError, match="names no sealed model"):
        verify_receipt(receipt, runtime_pub, statement_digest=digest)


def test_with_require_seal_receipts_and_headers_name_the_verified_digest(tmp_path, sealed_model):
    from charter.provenance import verify_receipt

    model, pub, _ = sealed_model
    state = GatewayState(_config(tmp_path, model, pub, receipts=True))
    digest = state.attestation.statement_digest
    assert state.attestation.verified and len(digest) == 64
    key = add_tenant(state.engine, "t")
    with ServerThread(create_app(state.config, state=state)) as srv:
        from openai import OpenAI

        client = OpenAI(base_url=srv.url, api_key=key, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="tiny", messages=[{"role": "user", "content": "hello"}]
        )
        assert raw.headers["x-charter-statement-digest"] == f"sha256:{digest}"
        assert _receipt_body(raw)["statement_digest"] == digest
        att = httpx.get(srv.url + "/attestation").json()
        assert att["seal"] == "verified" and att["statement_digest"] == digest and att["unverified"] is None
        runtime_pub = tmp_path / "runtime.pub.pem"
        runtime_pub.write_text(att["runtime_public_key"])
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(_receipt(raw)))
    assert verify_receipt(receipt, runtime_pub, statement_digest=f"sha256:{digest}")["statement_digest"] == digest
