"""Green-list watermarks in local generation, detected with the tokenizer and the key alone."""

import json

import pytest
import torch

from charter.backends.hf import HFBackend
from charter.core.errors import InputError
from charter.gateway.watermark import detect, detect_ids, generation_watermark
from tests.cli.test_cli import _one_error_line, invoke

KEY = bytes.fromhex("5f" * 32)  # a 256-bit secret, as the gateway's key file holds


def _generate(backend, watermark, seed, n=150):
    torch.manual_seed(seed)
    ids = torch.tensor([backend._encode(backend.render([{"role": "user", "content": f"tell me about {seed}"}]))])
    out = backend.model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=True,
        watermarking_config=watermark,
        pad_token_id=backend.tokenizer.pad_token_id,
    )
    return out[0, ids.shape[1] :].tolist()


def test_watermarked_tokens_are_detected_and_plain_ones_are_not(tiny_model_dir):
    # The tiny random tokenizer does not round-trip random text, so this tests token ids; the
    # text path is tested on the embedded model below and in bench/watermark.py.
    b = HFBackend(tiny_model_dir)
    wm = generation_watermark({"method": "kirchenbauer", "greenlist_ratio": 0.25, "bias": 2.0, "hashing_key": KEY})
    spec = f"hf:{tiny_model_dir}"
    marked = [detect_ids(_generate(b, wm, s), spec, hashing_key=KEY)["z_score"] for s in range(4)]
    plain = [detect_ids(_generate(b, None, s), spec, hashing_key=KEY)["z_score"] for s in range(4)]
    assert min(marked) >= 4.0, marked
    assert max(plain) < 4.0, plain
    other_key = detect_ids(_generate(b, wm, 0), spec, hashing_key=KEY[:-1] + b"\x00")["z_score"]
    assert other_key < 4.0  # the key is the secret: one byte off and the mark is gone


@pytest.mark.integration
def test_watermark_cli_on_embedded_model_text(tmp_path):
    from charter.backends.base import SamplingConfig
    from charter.backends.spec import load_backend

    b = load_backend("embedded:hf")
    wm = generation_watermark({"method": "kirchenbauer", "greenlist_ratio": 0.25, "bias": 2.0, "hashing_key": KEY})
    conv = [[{"role": "user", "content": "Write a short story about a lighthouse keeper."}]]
    cfg = SamplingConfig(max_new_tokens=160, temperature=0.8, top_p=0.95)
    marked = b.generate(conv, cfg, seeds=[7], watermark=wm)[0].text
    plain = b.generate(conv, cfg, seeds=[7])[0].text
    (tmp_path / "m.txt").write_text(marked)
    (tmp_path / "p.txt").write_text(plain)
    (tmp_path / "wm-key").write_text(KEY.hex())
    (tmp_path / "wm-key").chmod(0o600)
    r = invoke("watermark", "detect", "--file", tmp_path / "m.txt", "--key-file", tmp_path / "wm-key")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.splitlines()[0])["watermarked"] is True and "WATERMARKED" in r.stdout
    r = invoke("watermark", "detect", "--file", tmp_path / "p.txt", "--key-file", tmp_path / "wm-key")
    assert json.loads(r.stdout.splitlines()[0])["watermarked"] is False


def test_watermark_cli_errors(tiny_model_dir, tmp_path):
    assert "no such file" in _one_error_line(
        invoke("watermark", "detect", "--file", tmp_path / "nope", "--key-file", tmp_path / "nope")
    )
    (tmp_path / "x.txt").write_text("hello")
    key = tmp_path / "wm-key"
    key.write_text(KEY.hex())
    key.chmod(0o600)
    assert "local model" in _one_error_line(
        invoke(
            "watermark", "detect", "--file", tmp_path / "x.txt", "--key-file", key, "--model", "openai:http://h/v1#m"
        )
    )
    with pytest.raises(InputError, match="too short"):
        detect("", f"hf:{tiny_model_dir}", hashing_key=KEY)
    with pytest.raises(InputError, match="128 bits"):  # an integer key of the old kind is refused
        detect("some text here", f"hf:{tiny_model_dir}", hashing_key=424242)
    assert "--key-file" in _one_error_line(invoke("watermark", "detect", "--file", tmp_path / "x.txt"))
    key.chmod(0o644)
    assert "readable by group/others" in _one_error_line(
        invoke("watermark", "detect", "--file", tmp_path / "x.txt", "--key-file", key)
    )
    short = tmp_path / "short-key"
    short.write_text("ab" * 8 + "\n")  # 64 bits
    short.chmod(0o600)
    assert "at least 128" in _one_error_line(
        invoke("watermark", "detect", "--file", tmp_path / "x.txt", "--key-file", short)
    )


def test_profiles_cli():
    r = invoke("profiles", "show", "cac-genai", "eu-ai-act-art50", "--remote", "--json")
    assert r.exit_code == 0, r.output
    rows = {x["setting"]: x for x in json.loads(r.stdout)["settings"]}
    assert rows["label.visible"]["source"] == "cac-genai"
    assert "NOT APPLIED" in rows["watermark.enabled"]["value"]
    assert "cac-anthropomorphic" in invoke("profiles", "list").stdout
    assert "unknown profile" in _one_error_line(invoke("profiles", "show", "made-up"))
