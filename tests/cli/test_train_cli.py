import json

from tests.cli.test_cli import _one_error_line, invoke
from tests.train_fixtures import write_jsonl


def test_train_help():
    for args in (["train"], ["train", "sft"], ["train", "dpo"]):
        r = invoke(*args, "--help")
        assert r.exit_code == 0 and "Usage" in r.output


def test_train_sft_end_to_end_and_refusals(tmp_path, six_block_model, routed_constitution, sft_rows):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows("deep-one", n=2))
    out = tmp_path / "out"
    args = [
        "train",
        "sft",
        "--data",
        data,
        "--model",
        f"hf:{six_block_model}",
        "--constitution",
        routed_constitution,
        "--out",
        out,
        "--lora-r",
        "4",
        "--max-length",
        "64",
    ]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert "routing:" in r.output and (out / "profiles.png").exists()
    assert json.loads((out / "train_config.json").read_text())["arguments"]["lora_r"] == 4
    line = _one_error_line(invoke(*args))
    assert "holds a finished training run; pass --overwrite" in line
    assert invoke(*args, "--overwrite").exit_code == 0


def test_train_bad_input_is_one_line_exit_2(tmp_path, six_block_model, routed_constitution, pref_rows):
    bad = write_jsonl(tmp_path / "prefs.jsonl", [{"prompt": "hi", "chosen": "a"}])
    line = _one_error_line(
        invoke(
            "train",
            "dpo",
            "--data",
            bad,
            "--model",
            f"hf:{six_block_model}",
            "--constitution",
            routed_constitution,
            "--out",
            tmp_path / "o",
        )
    )
    assert "prefs.jsonl:1: missing column 'rejected'" in line
    line = _one_error_line(
        invoke(
            "train",
            "sft",
            "--data",
            tmp_path / "missing.jsonl",
            "--model",
            f"hf:{six_block_model}",
            "--out",
            tmp_path / "o",
        )
    )
    assert "no such data file" in line
    data = write_jsonl(tmp_path / "p2.jsonl", pref_rows("deep-one", 1))
    line = _one_error_line(
        invoke(
            "train",
            "dpo",
            "--data",
            data,
            "--model",
            f"hf:{six_block_model}",
            "--constitution",
            routed_constitution,
            "--out",
            tmp_path / "o",
            "--lora-targets",
            "nope_proj",
        )
    )
    assert "--lora-targets" in line
    r = invoke("train", "dpo", "--data", data, "--out", tmp_path / "o", "--labels", "fuzzy")
    assert r.exit_code == 2
