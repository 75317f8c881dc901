from tests.cli.test_cli import _one_error_line, invoke


def test_eval_help():
    for args in (["eval"], ["eval", "run"], ["eval", "report"], ["eval", "compare"]):
        r = invoke(*args, "--help")
        assert r.exit_code == 0 and "Usage" in r.output


def test_eval_run_report_compare(tmp_path, tiny_model_dir):
    model = f"hf:{tiny_model_dir}"
    r = invoke(
        "eval",
        "run",
        "--model",
        model,
        "--suite",
        "harmlessness",
        "--judge",
        model,
        "--limit",
        "2",
        "--max-new-tokens",
        "4",
        "--out",
        tmp_path / "h",
    )
    assert r.exit_code == 0, r.output
    assert "ASR (refusal detector)" in r.output and (tmp_path / "h" / "summary.json").exists()
    r = invoke(
        "eval",
        "run",
        "--model",
        model,
        "--suite",
        "over-refusal",
        "--limit",
        "2",
        "--max-new-tokens",
        "4",
        "--out",
        tmp_path / "o",
    )
    assert r.exit_code == 0, r.output
    assert "over-refusal" in r.output
    r = invoke("eval", "report", tmp_path / "h")
    assert r.exit_code == 0 and "harmlessness" in r.output
    r = invoke("eval", "compare", tmp_path / "h", tmp_path / "o", "--out", tmp_path / "rep")
    assert r.exit_code == 0, r.output
    assert "frontier:" in r.output and (tmp_path / "rep" / "frontier.png").exists()


def test_eval_bad_input_is_one_line_exit_2(tmp_path, tiny_model_dir):
    line = _one_error_line(
        invoke("eval", "run", "--model", f"hf:{tiny_model_dir}", "--suite", "vibes", "--out", tmp_path / "x")
    )
    assert "unknown suite 'vibes'" in line
    line = _one_error_line(
        invoke(
            "eval",
            "run",
            "--model",
            f"hf:{tiny_model_dir}",
            "--suite",
            "harmlessness",
            "--prompts",
            tmp_path / "none.csv",
            "--out",
            tmp_path / "x",
        )
    )
    assert "none.csv" in line
    line = _one_error_line(invoke("eval", "report", tmp_path))
    assert "not an evaluation directory" in line
    line = _one_error_line(invoke("eval", "compare", tmp_path / "missing", "--out", tmp_path / "r"))
    assert "no such evaluation directory" in line
    assert not (tmp_path / "x").exists()
