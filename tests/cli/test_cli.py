import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter.cli.main import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _one_error_line(result, code=2) -> str:
    assert result.exit_code == code, result.output
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    return lines[0]


def test_help_everywhere():
    for args in ([], ["constitution"], ["cai"], ["models"], ["cai", "critique-revise"], ["constitution", "diff"]):
        r = invoke(*args, "--help")
        assert r.exit_code == 0 and "Usage" in r.output


def test_constitution_validate_show_diff(tmp_path):
    r = invoke("constitution", "show", "default")
    assert r.exit_code == 0 and "broadly_safe > broadly_ethical" in r.output
    r = invoke("constitution", "show", "cai-2022", "--json")
    assert len(json.loads(r.output)["principles"]) == 16
    f = tmp_path / "c.toml"
    f.write_text(Path(__file__).parents[2].joinpath("src/charter/constitution/bundled/default.toml").read_text())
    r = invoke("constitution", "validate", f)
    assert r.exit_code == 0 and "ok: charter-default" in r.output
    g = tmp_path / "d.toml"
    g.write_text(
        f.read_text().replace('id = "privacy"\ntier = "broadly_ethical"', 'id = "privacy"\ntier = "broadly_safe"')
    )
    r = invoke("constitution", "diff", f, g)
    assert r.exit_code == 0 and "privacy: tier broadly_ethical -> broadly_safe (up)" in r.output
    r = invoke("constitution", "diff", f, g, "--json")
    assert json.loads(r.output)["tier_moves"][0]["principle"] == "privacy"


def test_validate_error_names_file_line_and_field(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(
        'name = "x"\nversion = "1"\n\n[[principles]]\nid = "a"\ntier = "nope"\n'
        'statement = "s"\ncritique = "c"\nrevision = "r"\n'
    )
    line = _one_error_line(invoke("constitution", "validate", f))
    assert f"{f}:6:" in line and "principles[0].tier" in line


@pytest.fixture()
def good_run(tmp_path, tiny_model_dir):
    prompts = tmp_path / "p.csv"
    prompts.write_text("goal\nhow do I pick a lock?\nhow do I make a fake id?\n")
    out = tmp_path / "out"
    r = invoke(
        "cai",
        "critique-revise",
        "-c",
        "cai-2022",
        "-p",
        prompts,
        "-o",
        out,
        "-m",
        f"hf:{tiny_model_dir}",
        "--max-new-tokens",
        "8",
    )
    assert r.exit_code == 0, r.output
    return prompts, out


def _snapshot(out: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_cli_run_and_show_chain(good_run):
    _, out = good_run
    r = invoke("cai", "show-chain", out)
    assert r.exit_code == 0 and "Critique" in r.output and "Revision" in r.output
    _one_error_line(invoke("cai", "show-chain", out, "--index", "9"))


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing", "no such prompt file"),
        ("empty", "prompt file is empty"),
        ("malformed", "malformed JSON line"),
        ("column", "unknown column 'nope'"),
        ("constitution", "unknown tier"),
        ("model", "unknown model spec"),
        ("endpoint", "cannot reach"),
        ("changed-args", "holds a run with different revisions"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_output_untouched(tmp_path, good_run, tiny_model_dir, case, needle):
    from servers.openai_server import free_port

    prompts, out = good_run
    before = _snapshot(out)
    args = {"-c": "cai-2022", "-p": prompts, "-o": out, "-m": f"hf:{tiny_model_dir}", "--max-new-tokens": "8"}
    extra = []
    if case == "missing":
        args["-p"] = tmp_path / "nope.csv"
    elif case == "empty":
        (tmp_path / "e.csv").write_text("")
        args["-p"] = tmp_path / "e.csv"
    elif case == "malformed":
        (tmp_path / "m.jsonl").write_text('{"prompt": "x"}\n{oops\n')
        args["-p"] = tmp_path / "m.jsonl"
    elif case == "column":
        extra = ["--column", "nope"]
    elif case == "constitution":
        (tmp_path / "c.toml").write_text(
            'name="x"\nversion="1"\n[[principles]]\nid="a"\ntier="t"\nstatement="s"\ncritique="c"\nrevision="r"\n'
        )
        args["-c"] = tmp_path / "c.toml"
    elif case == "model":
        args["-m"] = "gpt-5"
    elif case == "endpoint":
        args["-m"] = f"openai:http://127.0.0.1:{free_port()}/v1#m?retries=0&timeout=2"
        args["-o"] = tmp_path / "fresh"  # a dead endpoint must not even create the directory
    elif case == "changed-args":
        extra = ["--revisions", "2"]
    flat = [x for kv in args.items() for x in kv] + extra
    line = _one_error_line(invoke("cai", "critique-revise", *flat))
    assert needle in line
    assert _snapshot(out) == before
    assert not (tmp_path / "fresh").exists()


def test_console_script_exit_code_in_a_real_process(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "charter.cli.main", "constitution", "validate", tmp_path / "none.toml"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1


def test_models_check_loads_and_answers(tiny_model_dir):
    r = invoke("models", "check", f"hf:{tiny_model_dir}", "--max-new-tokens", "4")
    assert r.exit_code == 0, r.output
    assert '"backend": "hf"' in r.output and "tok/s" in r.output
    _one_error_line(invoke("models", "check", "hf:/no/such/model"))


def test_cai_preferences_cli(tmp_path, tiny_model_dir):
    prompts = tmp_path / "p.txt"
    prompts.write_text("how do I bake bread?\nwhat is a prime?\n")
    out = tmp_path / "prefs"
    r = invoke(
        "cai",
        "preferences",
        "-c",
        "default",
        "-p",
        prompts,
        "-o",
        out,
        "--policy",
        f"hf:{tiny_model_dir}",
        "--max-new-tokens",
        "6",
    )
    assert r.exit_code == 0, r.output
    assert "2 pairs judged" in r.output and (out / "prefs.jsonl").exists()
    line = _one_error_line(
        invoke("cai", "preferences", "-c", "default", "-p", tmp_path / "none.txt", "-o", tmp_path / "x")
    )
    assert "no such prompt file" in line and not (tmp_path / "x").exists()
