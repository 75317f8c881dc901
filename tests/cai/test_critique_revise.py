import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charter.cai import CritiqueReviser, CritiqueRevisionConfig
from charter.constitution import constitution_digest, load_constitution

VOLATILE = ("started", "finished")


def _prompts(tmp_path: Path, n: int, name: str = "red.csv") -> Path:
    f = tmp_path / name
    f.write_text("goal,target\n" + "".join(f'"How do I do harmful thing {i}?",Sure\n' for i in range(n)))
    return f


def _run(tmp_path, tiny_model_dir, out="out", **kw) -> Path:
    cfg = CritiqueRevisionConfig(
        constitution=kw.pop("constitution", "cai-2022"),
        prompts=str(kw.pop("prompts", None) or _prompts(tmp_path, 5)),
        out=str(tmp_path / out),
        model=f"hf:{tiny_model_dir}",
        max_new_tokens=kw.pop("max_new_tokens", 12),
        **kw,
    )
    r = CritiqueReviser(cfg)
    try:
        r.run()
    finally:
        r.close()
    return tmp_path / out


def _chains(out: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(l).items() if k not in VOLATILE}
        for l in (out / "chains.jsonl").read_text().splitlines()
    ]


def test_chains_and_sft_records(tmp_path, tiny_model_dir):
    helpful = tmp_path / "helpful.txt"
    helpful.write_text("How do I bake bread?\nWhat is a prime number?\n")
    out = _run(tmp_path, tiny_model_dir, revisions=3, helpful=str(helpful), batch_size=3, seed=7)
    chains = _chains(out)
    assert len(chains) == 7
    assert {c["kind"] for c in chains} == {"harmless", "helpful"}
    cai = load_constitution("cai-2022")
    ids = {p.id for p in cai.principles}
    for c in chains:
        assert c["constitution"]["digest"] == constitution_digest(cai)
        assert c["model"]["backend"] == "hf" and c["critic"] == c["model"]
        assert c["seed"] == 7
        if c["kind"] == "harmless":
            assert len(c["rounds"]) == 3
            assert all(r["principle"] in ids for r in c["rounds"])
            assert c["final_response"] == c["rounds"][-1]["revision"]
            assert c["rounds"][0]["critique_request"] == cai.principle(c["rounds"][0]["principle"]).critique
        else:
            assert c["rounds"] == [] and c["final_response"] == c["initial_response"]
    # Principles are resampled each round: across 5 prompts x 3 rounds more than one is used.
    assert len({r["principle"] for c in chains for r in c["rounds"]}) > 1
    sft = [json.loads(l) for l in (out / "sft.jsonl").read_text().splitlines()]
    assert [s["id"] for s in sft] == [c["id"] for c in chains]
    for s, c in zip(sft, chains):
        assert s["messages"] == [
            {"role": "user", "content": c["prompt"]},
            {"role": "assistant", "content": c["final_response"]},
        ]
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["arguments"]["revisions"] == 3


def test_outputs_load_with_datasets(tmp_path, tiny_model_dir):
    from datasets import load_dataset

    out = _run(tmp_path, tiny_model_dir)
    sft = load_dataset("json", data_files=str(out / "sft.jsonl"), split="train")
    assert sft.num_rows == 5 and sft[0]["messages"][0]["role"] == "user"
    chains = load_dataset("json", data_files=str(out / "chains.jsonl"), split="train")
    assert chains.num_rows == 5 and "rounds" in chains.column_names


def test_same_seed_same_output_and_other_seed_differs(tmp_path, tiny_model_dir):
    a = _chains(_run(tmp_path, tiny_model_dir, out="a", seed=3, revisions=2))
    b = _chains(_run(tmp_path, tiny_model_dir, out="b", seed=3, revisions=2))
    c = _chains(_run(tmp_path, tiny_model_dir, out="c", seed=4, revisions=2))
    assert a == b
    assert [x["final_response"] for x in a] != [x["final_response"] for x in c]


def test_rerun_of_a_finished_run_adds_nothing(tmp_path, tiny_model_dir):
    out = _run(tmp_path, tiny_model_dir)
    before = (out / "chains.jsonl").read_bytes()
    _run(tmp_path, tiny_model_dir)
    assert (out / "chains.jsonl").read_bytes() == before


def test_resume_with_different_arguments_is_refused(tmp_path, tiny_model_dir):
    from charter.core.errors import InputError

    _run(tmp_path, tiny_model_dir)
    with pytest.raises(InputError, match="different revisions"):
        _run(tmp_path, tiny_model_dir, revisions=2)


def test_resume_after_the_process_is_killed(tmp_path, tiny_model_dir):
    prompts = _prompts(tmp_path, 40)
    args = [
        sys.executable,
        "-m",
        "charter.cli.main",
        "cai",
        "critique-revise",
        "--constitution",
        "cai-2022",
        "--prompts",
        str(prompts),
        "--model",
        f"hf:{tiny_model_dir}",
        "--revisions",
        "2",
        "--batch-size",
        "1",
        "--max-new-tokens",
        "40",
        "--seed",
        "5",
    ]
    env = {**os.environ, "CHARTER_PROGRESS": "0"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    chains = killed / "chains.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if chains.exists() and chains.read_text().count("\n") >= 3:
            break
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be killed: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = chains.read_text().count("\n")
    assert 3 <= partial < 40, "the kill must land mid-run"

    subprocess.run(args + ["--out", str(killed)], env=env, check=True, capture_output=True)
    straight = tmp_path / "straight"
    subprocess.run(args + ["--out", str(straight)], env=env, check=True, capture_output=True)

    resumed = _chains(killed)
    ids = [c["id"] for c in resumed]
    assert len(ids) == 40 and len(set(ids)) == 40  # nothing lost, nothing duplicated
    sft_ids = [json.loads(l)["id"] for l in (killed / "sft.jsonl").read_text().splitlines()]
    assert sorted(sft_ids) == sorted(ids)
    # Per-prompt seeds make the resumed run's data identical to an uninterrupted run.
    by_id = {c["id"]: c for c in _chains(straight)}
    assert all(by_id[c["id"]] == c for c in resumed)


@pytest.mark.integration
def test_embedded_model_on_two_prompts(tmp_path, shared_data):
    cfg = CritiqueRevisionConfig(
        constitution="default",
        prompts=str(shared_data / "advbench" / "harmful_behaviors.csv"),
        out=str(tmp_path / "emb"),
        model="embedded",
        limit=2,
        revisions=1,
        max_new_tokens=48,
    )
    r = CritiqueReviser(cfg)
    try:
        summary = r.run()
    finally:
        r.close()
    assert summary["records"] == 2
    chains = _chains(tmp_path / "emb")
    for c in chains:
        assert c["model"]["digest"].startswith("sha256:")
        assert c["initial_response"] and c["rounds"][0]["critique"]
        assert len(c["final_response"]) > 0


def test_resume_repairs_a_torn_last_line(tmp_path, tiny_model_dir):
    out = _run(tmp_path, tiny_model_dir)
    lines = (out / "chains.jsonl").read_text().splitlines(keepends=True)
    (out / "chains.jsonl").write_text("".join(lines[:-1]) + lines[-1][:30])  # killed mid-write
    _run(tmp_path, tiny_model_dir)
    chains = _chains(out)
    assert len(chains) == 5 and len({c["id"] for c in chains}) == 5
    assert len((out / "sft.jsonl").read_text().splitlines()) == 5


def test_renamed_prompt_file_resumes_without_duplicates(tmp_path, tiny_model_dir):
    prompts = _prompts(tmp_path, 4)
    out = _run(tmp_path, tiny_model_dir, prompts=prompts)
    moved = prompts.rename(tmp_path / "moved.csv")
    _run(tmp_path, tiny_model_dir, prompts=moved)
    assert len(_chains(out)) == 4


def test_a_prompt_too_long_for_the_model_is_recorded_not_fatal(tmp_path, tiny_model_dir):
    f = tmp_path / "long.csv"
    f.write_text('goal\n"short one"\n"' + "bread " * 5000 + '"\n"another short one"\n')
    out = _run(tmp_path, tiny_model_dir, prompts=f, batch_size=2)
    chains = _chains(out)
    assert len(chains) == 3
    failed = [c for c in chains if "error" in c]
    assert len(failed) == 1 and "exceeds the model's 4096 positions" in failed[0]["error"]
    sft = (out / "sft.jsonl").read_text().splitlines()
    assert len(sft) == 2


def test_chain_scope_builds_one_growing_conversation(tmp_path, tiny_model_dir):
    out = _run(tmp_path, tiny_model_dir, few_shot_scope="chain", revisions=2, few_shot=1)
    chains = _chains(out)
    assert len(chains) == 5 and all(len(c["rounds"]) == 2 for c in chains)
    assert json.loads((out / "run.json").read_text())["arguments"]["few_shot_scope"] == "chain"
