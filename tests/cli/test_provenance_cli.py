import shutil

from tests.cli.test_cli import _one_error_line, invoke


def test_keys_seal_verify_lineage_receipts(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("CHARTER_KEY_PASSPHRASE", "s3cret-pass")
    r = invoke("keys", "generate", "--out", tmp_path / "keys")
    assert r.exit_code == 0, r.output
    assert "s3cret-pass" not in r.output
    priv, pub = tmp_path / "keys" / "private_key.pem", tmp_path / "keys" / "public_key.pem"
    line = _one_error_line(invoke("keys", "generate", "--out", tmp_path / "keys"))
    assert "refusing to overwrite" in line

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    r = invoke("seal", model, "--constitution", "default", "--key", priv)
    assert r.exit_code == 0, r.output
    digest = r.output.split("statement digest sha256:")[1].split()[0]
    r = invoke("verify", model, "--public-key", pub, "--constitution", "default")
    assert r.exit_code == 0 and "ok: statement subject = signed root digest" in r.output
    r = invoke("lineage", model)
    assert r.exit_code == 0 and "charter-default" in r.output

    (tmp_path / "p.txt").write_text("hi")
    (tmp_path / "o.txt").write_text("hello")
    r = invoke(
        "sign-receipt",
        "--key",
        priv,
        "--statement-digest",
        digest,
        "--request-id",
        "r1",
        "--prompt-file",
        tmp_path / "p.txt",
        "--output-file",
        tmp_path / "o.txt",
        "--out",
        tmp_path / "rec.json",
    )
    assert r.exit_code == 0, r.output
    r = invoke(
        "verify-receipt",
        tmp_path / "rec.json",
        "--public-key",
        pub,
        "--output-file",
        tmp_path / "o.txt",
        "--statement-digest",
        digest,
    )
    assert r.exit_code == 0 and "receipt ok" in r.output
    (tmp_path / "o.txt").write_text("tampered")
    line = _one_error_line(
        invoke("verify-receipt", tmp_path / "rec.json", "--public-key", pub, "--output-file", tmp_path / "o.txt"),
        code=1,
    )
    assert "output given is not the one" in line

    (model / "model.safetensors").write_bytes(b"swapped weights")
    line = _one_error_line(invoke("verify", model, "--public-key", pub), code=1)
    assert "changed: model.safetensors" in line


def test_seal_errors(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("CHARTER_KEY_PASSPHRASE", "right")
    assert invoke("keys", "generate", "--out", tmp_path / "k").exit_code == 0
    monkeypatch.setenv("CHARTER_KEY_PASSPHRASE", "wrong")
    line = _one_error_line(
        invoke("seal", tiny_model_dir, "--constitution", "default", "--key", tmp_path / "k" / "private_key.pem")
    )
    assert "wrong passphrase" in line
    line = _one_error_line(invoke("verify", tmp_path / "nope", "--public-key", tmp_path / "k" / "public_key.pem"))
    assert "no such model directory" in line
    line = _one_error_line(invoke("verify", tiny_model_dir, "--public-key", tmp_path / "k" / "public_key.pem"), code=1)
    assert "is not sealed" in line
