"""Seal -> verify round trips and every tamper case, on a tiny model directory."""

import base64
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charter.core.errors import InputError, VerificationError
from charter.provenance import (
    SealConfig,
    Sealer,
    generate_keypair,
    lineage,
    load_private_key,
    sign_receipt,
    verify_model,
    verify_receipt,
)

PASS = b"correct horse battery staple"
BUNDLED = Path(__file__).parents[2] / "src/charter/constitution/bundled/default.toml"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    priv, pub = generate_keypair(d / "a", PASS)
    _, other_pub = generate_keypair(d / "b", b"another")
    return {"priv": priv, "pub": pub, "other_pub": other_pub}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("sl-cai")
    (d / "run.json").write_text(
        json.dumps({"task": "sl-cai/critique-revise", "arguments": {"prompts_sha256": "sha256:abc"}})
    )
    (d / "chains.jsonl").write_text('{"id": "x"}\n')
    (d / "sft.jsonl").write_text('{"messages": []}\n')
    return d / "sft.jsonl"


@pytest.fixture(scope="module")
def sealed(tmp_path_factory, tiny_model_dir, keys, data_file):
    d = tmp_path_factory.mktemp("sealed") / "model"
    shutil.copytree(tiny_model_dir, d)
    Sealer(
        SealConfig(model_dir=str(d), constitution="default", key=str(keys["priv"]), data=(str(data_file),)), PASS
    ).seal()
    return d


def _copy(sealed, tmp_path) -> Path:
    d = tmp_path / "model"
    shutil.copytree(sealed, d)
    return d


def test_round_trip_verifies_and_records_the_provenance(sealed, keys):
    v = verify_model(sealed, keys["pub"], constitution="default")
    p = v.predicate
    assert p["constitution"]["name"] == "charter-default" and "[[principles]]" in p["constitution"]["text"]
    assert p["datasets"][0]["lineage"]["task"] == "sl-cai/critique-revise"
    assert set(p["datasets"][0]["lineage"]["records"]) == {"chains.jsonl", "sft.jsonl"}
    assert p["tools"]["charter"] and p["tools"]["model-signing"]
    assert len(v.root_digest) == 64 and len(v.checks) == 4
    assert any("charter-default" in line for line in v.summary_lines())


def _flip(path: Path, offset: int = 100) -> None:
    b = bytearray(path.read_bytes())
    b[offset % len(b)] ^= 0x01
    path.write_bytes(bytes(b))


def _edit_statement(d: Path) -> None:
    p = d / "charter-seal" / "provenance.dsse.json"
    env = json.loads(p.read_text())
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"]["constitution"]["version"] = "9.9.9"
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    p.write_text(json.dumps(env))


TAMPER = {
    "changed weight byte": (lambda d, ctx: _flip(d / "model.safetensors"), "changed: model.safetensors"),
    "changed config byte": (lambda d, ctx: _flip(d / "config.json", 5), "changed: config.json"),
    "added file": (lambda d, ctx: (d / "extra.bin").write_bytes(b"x"), "added: extra.bin"),
    "missing file": (lambda d, ctx: (d / "tokenizer.json").unlink(), "missing: tokenizer.json"),
    "edited statement": (lambda d, ctx: _edit_statement(d), "edited after signing"),
    "swapped statement": (
        lambda d, ctx: shutil.copy(
            ctx["other"] / "charter-seal" / "provenance.dsse.json", d / "charter-seal" / "provenance.dsse.json"
        ),
        "about other weights",
    ),
    "deleted seal": (lambda d, ctx: shutil.rmtree(d / "charter-seal"), "is not sealed"),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_every_tamper_case_fails_naming_what(case, sealed, keys, tmp_path, tiny_model_dir, six_block_model):
    other = tmp_path / "other"
    shutil.copytree(six_block_model, other)
    Sealer(SealConfig(model_dir=str(other), constitution="default", key=str(keys["priv"])), PASS).seal()
    d = _copy(sealed, tmp_path)
    tamper, message = TAMPER[case]
    tamper(d, {"other": other})
    with pytest.raises(VerificationError, match=message):
        verify_model(d, keys["pub"])


def test_wrong_key_and_changed_constitution_fail(sealed, keys, tmp_path):
    with pytest.raises(VerificationError, match="wrong key"):
        verify_model(sealed, keys["other_pub"])
    changed = tmp_path / "c.toml"
    changed.write_text(BUNDLED.read_text().replace('version = "1.0.0"', 'version = "1.0.1"'))
    with pytest.raises(VerificationError, match="is not the sealed one"):
        verify_model(sealed, keys["pub"], constitution=str(changed))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    file_index=st.integers(min_value=0, max_value=1000),
    offset=st.integers(min_value=0, max_value=10**7),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_single_bit_flip_in_any_file_is_detected(sealed, keys, tmp_path_factory, file_index, offset, bit):
    d = _copy(sealed, tmp_path_factory.mktemp("flip"))
    files = sorted(p for p in d.rglob("*") if p.is_file() and "charter-seal" not in p.parts)
    target = files[file_index % len(files)]
    b = bytearray(target.read_bytes())
    b[offset % len(b)] ^= 1 << bit
    target.write_bytes(bytes(b))
    with pytest.raises(VerificationError, match=f"changed: {target.relative_to(d)}"):
        verify_model(d, keys["pub"])


def test_wrong_or_missing_passphrase_is_a_clear_input_error(keys):
    with pytest.raises(InputError, match="wrong passphrase"):
        load_private_key(keys["priv"], b"not it")
    with pytest.raises(InputError, match="CHARTER_KEY_PASSPHRASE"):
        load_private_key(keys["priv"], None)
    assert b"ENCRYPTED" in Path(keys["priv"]).read_bytes()
    assert oct(Path(keys["priv"]).stat().st_mode & 0o777) == "0o600"


def test_sealing_refuses_a_wrong_passphrase_before_touching_the_model(tiny_model_dir, keys, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    with pytest.raises(InputError, match="wrong passphrase"):
        Sealer(SealConfig(model_dir=str(d), constitution="default", key=str(keys["priv"])), b"nope").seal()
    assert not (d / "charter-seal").exists()


def test_lineage_walks_parents_and_notices_a_replaced_parent(sealed, keys, tmp_path, six_block_model):
    parent = _copy(sealed, tmp_path)
    child = tmp_path / "child"
    shutil.copytree(six_block_model, child)
    Sealer(
        SealConfig(model_dir=str(child), constitution="default", key=str(keys["priv"]), parent=str(parent)), PASS
    ).seal()
    chain = lineage(child, keys["pub"])
    assert [Path(c["model_dir"]).name for c in chain] == ["child", "model"] and all(c["verified"] for c in chain)
    # The parent re-sealed (a different statement): the child's recorded digest no longer matches.
    Sealer(
        SealConfig(model_dir=str(parent), constitution="cai-2022", key=str(keys["priv"]), overwrite=True), PASS
    ).seal()
    with pytest.raises(VerificationError, match="not the one its child recorded"):
        lineage(child, keys["pub"])


def test_receipts_sign_and_verify(tmp_path, keys):
    key = load_private_key(keys["priv"], PASS)
    r = tmp_path / "r.json"
    r.write_text(
        json.dumps(sign_receipt(key, statement_digest="ab" * 32, request_id="req-1", prompt="hi", output="hello"))
    )
    body = verify_receipt(r, keys["pub"], prompt="hi", output="hello", statement_digest="ab" * 32)
    assert body["request_id"] == "req-1" and len(body["prompt_sha256"]) == 64
    with pytest.raises(VerificationError, match="output given is not the one"):
        verify_receipt(r, keys["pub"], output="goodbye")
    with pytest.raises(VerificationError, match="wrong key"):
        verify_receipt(r, keys["other_pub"])
    env = json.loads(r.read_text())
    body["request_id"] = "req-2"
    env["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    r.write_text(json.dumps(env))
    with pytest.raises(VerificationError, match="edited after signing"):
        verify_receipt(r, keys["pub"])


def test_sealed_loading_refuses_unsealed_and_tampered_models(sealed, keys, tmp_path, tiny_model_dir):
    from charter.backends import load_backend

    b = load_backend(f"hf:{sealed}?require_seal={keys['pub']}")
    assert b.info.options["seal_statement_sha256"]
    with pytest.raises(VerificationError, match="refusing to load .* is not sealed"):
        load_backend(f"hf:{tiny_model_dir}?require_seal={keys['pub']}")
    d = _copy(sealed, tmp_path)
    _flip(d / "model.safetensors")
    with pytest.raises(VerificationError, match="refusing to load .*changed: model.safetensors"):
        load_backend(f"hf:{d}?require_seal={keys['pub']}")


def test_a_filtered_corpus_carries_its_filter_lineage_into_the_seal(tmp_path):
    from charter.provenance.statement import dataset_entry

    (tmp_path / "kept.jsonl").write_text('{"text": "ok"}\n')
    (tmp_path / "lineage.json").write_text(
        json.dumps({"task": "data/filter", "input_sha256": "sha256:abc", "kept": 1, "removed": 2})
    )
    entry = dataset_entry(tmp_path / "kept.jsonl")
    assert entry["lineage"]["task"] == "data/filter" and entry["lineage"]["filter"]["removed"] == 2


def test_seal_refuses_evidence_about_other_models(tmp_path, tiny_model_dir, keys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "summary.json").write_text(json.dumps({"suite": "harmlessness", "model": f"hf:{tiny_model_dir}"}))
    with pytest.raises(InputError, match="seal each model with its own evaluations"):
        Sealer(
            SealConfig(model_dir=str(model), constitution="default", key=str(keys["priv"]), evals=(str(ev),)), PASS
        ).seal()
    (ev / "summary.json").write_text(json.dumps({"suite": "harmlessness", "model": f"hf:{model}"}))
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "guard.json").write_text(
        json.dumps(
            {
                "format": "charter-guard/1",
                "sides": {},
                "constitution": {"name": "other", "digest": "sha256:" + "0" * 64},
            }
        )
    )
    with pytest.raises(InputError, match="the guard was trained for constitution 'other'"):
        Sealer(
            SealConfig(
                model_dir=str(model), constitution="default", key=str(keys["priv"]), evals=(str(ev),), guard=str(guard)
            ),
            PASS,
        ).seal()
    Sealer(
        SealConfig(model_dir=str(model), constitution="default", key=str(keys["priv"]), evals=(str(ev),)), PASS
    ).seal()
    assert verify_model(model, keys["pub"]).predicate["evaluations"][0]["model"] == f"hf:{model}"
