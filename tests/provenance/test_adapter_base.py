"""A sealed LoRA adapter is bound to its base: the seal records the base's content digest, and
verification, sealed loading and the gateway's require_seal refuse a changed, replaced or missing
base, a sealed base whose own seal is broken, and adapters sealed before base binding."""

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from charter.core.digests import weights_digest
from charter.core.errors import InputError, VerificationError
from charter.provenance import SealConfig, Sealer, generate_keypair, load_private_key, verify_model
from charter.provenance.dsse import INTOTO, sign_envelope
from tests.provenance.test_seal import _edit_statement
from tests.tiny_models import build_tiny_model

PASS = b"adapter base passphrase"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    priv, pub = generate_keypair(d / "a", PASS)
    other_priv, other_pub = generate_keypair(d / "b", PASS)
    return {"priv": priv, "pub": pub, "other_priv": other_priv, "other_pub": other_pub}


@pytest.fixture(scope="module")
def other_base(tmp_path_factory):
    """Same architecture and tokenizer as the tiny base, other random weights: a drop-in swap."""
    return build_tiny_model(tmp_path_factory.mktemp("other-base"), seed=1)


def _make_adapter(tmp_path: Path, base_src: Path) -> tuple[Path, Path]:
    """A real PEFT LoRA adapter directory over a copy of ``base_src`` (non-zero LoRA weights)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tmp_path / "base"
    shutil.copytree(base_src, base)
    adapter = tmp_path / "adapter"
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(base)),
        LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base).save_pretrained(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    return base, adapter


def _seal(model_dir: Path, key: Path, **kw) -> None:
    Sealer(SealConfig(model_dir=str(model_dir), constitution="default", key=str(key), **kw), PASS).seal()


@pytest.fixture
def sealed_adapter(tmp_path, tiny_model_dir, keys):
    base, adapter = _make_adapter(tmp_path, tiny_model_dir)
    _seal(adapter, keys["priv"])
    return base, adapter


def _flip(path: Path, offset: int = 200) -> None:
    b = bytearray(path.read_bytes())
    b[offset % len(b)] ^= 0x01
    path.write_bytes(bytes(b))


def _load(adapter: Path, pub: Path):
    from charter.backends import load_backend

    return load_backend(f"hf:{adapter}?require_seal={pub}")


def test_adapter_seal_records_its_base_and_an_unchanged_base_verifies_and_loads(sealed_adapter, keys):
    base, adapter = sealed_adapter
    v = verify_model(adapter, keys["pub"])
    recorded = v.predicate["adapter_base"]
    assert recorded["name_or_path"] == str(base) and recorded["path"] == str(base.resolve())
    assert recorded["sha256"] == weights_digest(base)["sha256"]  # the digest training records for an hf: base
    assert set(recorded["files"]) == {"config.json", "model.safetensors"}
    assert "generation_config.json" in recorded["other_files"] and "seal" not in recorded
    assert any(c.startswith(f"adapter base {base} matches") for c in v.checks)
    assert any("adapter base" in line for line in v.summary_lines())
    b = _load(adapter, keys["pub"])
    assert b.info.options["seal_statement_sha256"] == v.statement_digest


@pytest.mark.parametrize(
    "swap",
    [
        "flip a weight byte",
        "replace the safetensors",
        "edit config.json",
        "add generation defaults",
        "turn the base into an adapter",
    ],
)
def test_a_changed_base_fails_verify_sealed_loading_and_the_gateway(swap, sealed_adapter, keys, other_base, tmp_path):
    base, adapter = sealed_adapter
    if swap == "flip a weight byte":
        _flip(base / "model.safetensors")
        named = "model.safetensors (changed)"
    elif swap == "replace the safetensors":
        shutil.copy(other_base / "model.safetensors", base / "model.safetensors")
        named = "model.safetensors (changed)"
    elif swap == "edit config.json":
        cfg = json.loads((base / "config.json").read_text())
        (base / "config.json").write_text(json.dumps(cfg | {"rms_norm_eps": 0.5}))
        named = "config.json (changed)"
    elif swap == "add generation defaults":
        (base / "generation_config.json").write_text(json.dumps({"eos_token_id": 3}))
        named = "generation_config.json (changed)"
    else:  # transformers would follow this adapter_config.json to yet another model
        (base / "adapter_config.json").write_text(
            json.dumps({"base_model_name_or_path": str(other_base), "peft_type": "LORA"})
        )
        named = "adapter_config.json (added)"
    message = f"the adapter's base model {base} is not the one sealed with it — .*{re.escape(named)}"
    with pytest.raises(VerificationError, match=message):
        verify_model(adapter, keys["pub"])
    with pytest.raises(VerificationError, match=f"refusing to load {adapter}: {message}"):
        _load(adapter, keys["pub"])
    from charter.gateway import GatewayConfig, GatewayState

    cfg = GatewayConfig.model_validate(
        {
            "server": {
                "database": f"sqlite:///{tmp_path / 'gw.db'}",
                "runtime_key": str(tmp_path / "rt.pem"),
                "system_prompt": "none",
                "log_requests": False,
            },
            "upstream": {"model": f"hf:{adapter}", "model_id": "tiny", "require_seal": str(keys["pub"])},
        }
    )
    with pytest.raises(VerificationError, match=message):
        GatewayState(cfg)


def test_a_missing_base_is_refused_naming_it(sealed_adapter, keys, tmp_path):
    base, adapter = sealed_adapter
    base.rename(tmp_path / "moved")
    with pytest.raises(VerificationError, match=f"the adapter's base model {base} cannot be found"):
        verify_model(adapter, keys["pub"])
    with pytest.raises(VerificationError, match=f"refusing to load .*base model {base} cannot be found"):
        _load(adapter, keys["pub"])


def test_a_sealed_base_verifies_its_own_seal_and_a_broken_one_is_reported(tmp_path, tiny_model_dir, keys):
    base, adapter = _make_adapter(tmp_path, tiny_model_dir)
    _seal(base, keys["priv"])
    _seal(adapter, keys["priv"])
    v = verify_model(adapter, keys["pub"])
    assert v.predicate["adapter_base"]["seal"]["statement_digest"]
    assert any("adapter base's own seal verifies" in c for c in v.checks)
    # The base's weights are untouched, only its seal is broken: the adapter must still fail.
    _edit_statement(base)
    with pytest.raises(
        VerificationError,
        match=f"the adapter's base model {base} is sealed but its own seal does "
        "not verify with this key: .*edited after signing",
    ):
        verify_model(adapter, keys["pub"])
    with pytest.raises(VerificationError, match="refusing to load .*its own seal does not verify"):
        _load(adapter, keys["pub"])
    # Re-sealed by another key (the base's content unchanged): not this key's seal.
    _seal(base, keys["other_priv"], overwrite=True)
    with pytest.raises(VerificationError, match="its own seal does not verify with this key: .*wrong key"):
        verify_model(adapter, keys["pub"])


def test_an_adapter_sealed_before_base_binding_is_refused_with_a_re_seal_hint(sealed_adapter, keys):
    """A seal made before this change: the same statement without adapter_base, validly signed."""
    base, adapter = sealed_adapter
    p = adapter / "charter-seal" / "provenance.dsse.json"
    statement = json.loads(base64.b64decode(json.loads(p.read_text())["payload"]))
    del statement["predicate"]["adapter_base"]
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    p.write_text(json.dumps(sign_envelope(payload, INTOTO, load_private_key(keys["priv"], PASS))))
    with pytest.raises(VerificationError, match="is a LoRA adapter sealed before base binding: .*re-seal it"):
        verify_model(adapter, keys["pub"])
    with pytest.raises(VerificationError, match="refusing to load .*sealed before base binding"):
        _load(adapter, keys["pub"])
    _seal(adapter, keys["priv"], overwrite=True)  # re-sealing binds the base
    assert verify_model(adapter, keys["pub"]).predicate["adapter_base"]["sha256"] == weights_digest(base)["sha256"]


def test_sealing_an_adapter_needs_its_base_here(sealed_adapter, keys, tmp_path):
    base, adapter = sealed_adapter
    shutil.rmtree(base)
    with pytest.raises(InputError, match=f"the adapter's base model {base} cannot be found"):
        _seal(adapter, keys["priv"], overwrite=True)


def test_a_full_model_seal_records_no_adapter_base(tiny_model_dir, keys, tmp_path):
    model = tmp_path / "full"
    shutil.copytree(tiny_model_dir, model)
    _seal(model, keys["priv"])
    v = verify_model(model, keys["pub"])
    assert v.predicate["adapter_base"] is None and not any("adapter" in c for c in v.checks)


def test_cli_verify_names_the_swapped_base_in_one_line_and_verify_receipt_reads_unverified(
    sealed_adapter, keys, tmp_path
):
    from charter.provenance import sign_receipt
    from tests.cli.test_cli import _one_error_line, invoke

    base, adapter = sealed_adapter
    r = invoke("verify", adapter, "--public-key", keys["pub"])
    assert r.exit_code == 0 and f"ok: adapter base {base} matches" in r.output and "adapter base" in r.output
    _flip(base / "model.safetensors")
    line = _one_error_line(invoke("verify", adapter, "--public-key", keys["pub"]), code=1)
    assert f"the adapter's base model {base} is not the one sealed with it" in line and "model.safetensors" in line
    # A receipt from a gateway that verified no seal names none; checking it against a digest fails.
    rec = tmp_path / "rec.json"
    rec.write_text(
        json.dumps(
            sign_receipt(
                load_private_key(keys["priv"], PASS),
                statement_digest="unverified",
                request_id="r1",
                prompt="hi",
                output="hello",
            )
        )
    )
    r = invoke("verify-receipt", rec, "--public-key", keys["pub"])
    assert r.exit_code == 0 and "model unverified: the gateway had not verified a seal at start" in r.output
    line = _one_error_line(
        invoke("verify-receipt", rec, "--public-key", keys["pub"], "--statement-digest", "ab" * 32), code=1
    )
    assert "names no sealed model" in line


def test_the_base_must_be_the_one_training_recorded(sealed_adapter, keys, other_base):
    """A training output records its base's digest (train_config.json base_model): a base replaced
    between training and sealing is refused, not sealed as if it were the original."""
    base, adapter = sealed_adapter
    record = {"spec": f"hf:{base}", "path": str(base.resolve()), "sha256": weights_digest(base)["sha256"]}
    (adapter / "train_config.json").write_text(
        json.dumps({"method": "sft", "arguments": {"lora": True}, "base_model": record})
    )
    _seal(adapter, keys["priv"], overwrite=True)
    assert verify_model(adapter, keys["pub"]).predicate["adapter_base"]["spec"] == f"hf:{base}"
    (adapter / "train_config.json").write_text(
        json.dumps({"method": "sft", "base_model": record | {"sha256": weights_digest(other_base)["sha256"]}})
    )
    with pytest.raises(InputError, match=f"the adapter's base {base} is not the model it was trained from"):
        _seal(adapter, keys["priv"], overwrite=True)


def test_a_dequantised_gguf_base_records_its_gguf_and_is_checked_by_the_copy_that_loads(tmp_path, tiny_model_dir, keys):
    """embedded/gguf: bases are loaded from the dequantised cache directory (SOURCE names the GGUF
    and its sha256, as backends.hf.dequantised_gguf_dir writes it); training records the GGUF's
    sha256. The seal records both and verification checks the directory that loads."""
    from charter.core.digests import file_sha256

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF stand-in bytes")
    base, adapter = _make_adapter(tmp_path, tiny_model_dir)
    (base / "SOURCE").write_text(f"{gguf}\n{file_sha256(gguf)}\n")
    (base / "COMPLETE").write_text("ok\n")
    (adapter / "train_config.json").write_text(
        json.dumps(
            {"method": "sft", "base_model": {"spec": "embedded", "gguf": str(gguf), "sha256": file_sha256(gguf)}}
        )
    )
    _seal(adapter, keys["priv"])
    recorded = verify_model(adapter, keys["pub"]).predicate["adapter_base"]
    assert recorded["gguf"] == {"path": str(gguf), "sha256": file_sha256(gguf)} and recorded["spec"] == "embedded"
    _flip(base / "model.safetensors")  # the cached copy is what loads: changing it is caught
    with pytest.raises(VerificationError, match="model.safetensors \\(changed\\)"):
        verify_model(adapter, keys["pub"])
    _flip(base / "model.safetensors")
    (adapter / "train_config.json").write_text(
        json.dumps(
            {"method": "sft", "base_model": {"spec": "embedded", "gguf": str(gguf), "sha256": "sha256:" + "0" * 64}}
        )
    )
    with pytest.raises(InputError, match="is not the model it was trained from"):
        _seal(adapter, keys["priv"], overwrite=True)
