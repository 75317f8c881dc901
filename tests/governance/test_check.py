"""charter check: exit codes on each rule, against real sealed releases."""

import json

import pytest
from typer.testing import CliRunner

from charter.cli.main import app
from charter.governance.check import data_change

EVALS = (("harmlessness", 2, 20), ("over-refusal", 1, 20))


@pytest.fixture(scope="module")
def baseline(make_release):
    return make_release("baseline", evals=EVALS)


def run_check(baseline, candidate, *extra):
    res = CliRunner().invoke(
        app, ["check", "--baseline", str(baseline), "--candidate", str(candidate), "--json", *map(str, extra)]
    )
    return res.exit_code, (json.loads(res.output) if res.output.strip().startswith("{") else res.output)


def rules_of(result) -> dict:
    return {f["rule"]: f for f in result["findings"]}


def test_same_release_passes(baseline, make_release, gov_keys):
    again = make_release("same-evals", evals=EVALS)  # retrained from identical inputs: new seal, same everything
    code, r = run_check(baseline, again, "--public-key", gov_keys["pub"])
    assert code == 0, r
    assert r["verdict"] == "pass" and r["findings"] == [] and r["baseline"]["verified"]
    assert r["measurements"]["training_data"]["changed_fraction"] == 0.0


def test_base_model_change_needs_refiling(baseline, make_release, other_base):
    code, r = run_check(baseline, make_release("other-base", base=other_base, evals=EVALS))
    assert code == 1 and r["verdict"] == "refile"
    assert rules_of(r)["base_model"]["action"] == "refile"
    assert "architecture" not in rules_of(r)


def test_architecture_change_needs_refiling(baseline, make_release, other_arch):
    code, r = run_check(baseline, make_release("other-arch", base=other_arch, evals=EVALS))
    assert code == 1
    f = rules_of(r)["architecture"]
    assert (
        f["action"] == "refile"
        and f["baseline"] == {"num_hidden_layers": 6}
        and f["candidate"] == {"num_hidden_layers": 4}
    )


def test_training_data_threshold(baseline, make_release, tmp_path):
    small = make_release("data-small", n_rows=7, evals=EVALS)  # one record added of 7
    code, r = run_check(baseline, small)
    assert code == 1 and r["verdict"] == "review"
    assert r["measurements"]["training_data"]["changed_fraction"] == pytest.approx(1 / 7, abs=1e-6)
    big = make_release("data-big", data_variant="b", evals=EVALS)  # every record different
    code, r = run_check(baseline, big)
    assert code == 1 and r["verdict"] == "refile" and rules_of(r)["training_data"]["action"] == "refile"
    # A looser threshold turns the big change into a review, and `ignore` silences the rule.
    rules = tmp_path / "rules.toml"
    rules.write_text("[training_data]\nmax_changed_fraction = 1.0\n")
    code, r = run_check(baseline, big, "--rules", rules)
    assert r["verdict"] == "review"
    rules.write_text('[training_data]\naction = "ignore"\n')
    code, r = run_check(baseline, big, "--rules", rules)
    assert code == 0 and r["verdict"] == "pass" and rules_of(r)["training_data"]["action"] == "ignore"


def test_hard_constraint_relaxed_needs_refiling(baseline, make_release):
    code, r = run_check(baseline, make_release("relaxed", relax_hard=True, evals=EVALS))
    assert code == 1 and rules_of(r)["hard_constraints"]["action"] == "refile"
    assert "deep-one" in rules_of(r)["hard_constraints"]["message"]
    assert rules_of(r)["constitution"]["action"] == "review" and r["measurements"]["constitution_drift"] > 0


def test_guard_loosened_needs_review(baseline, make_release):
    code, r = run_check(baseline, make_release("loose-guard", loosen_guard=0.2, evals=EVALS))
    assert code == 1 and r["verdict"] == "review"
    assert "input stage 1 block threshold" in rules_of(r)["guard"]["message"]
    code, r = run_check(baseline, make_release("no-guard", guard=False, evals=EVALS))
    assert code == 1 and "without one" in rules_of(r)["guard"]["message"]


def test_evaluation_regression_needs_review(baseline, make_release):
    code, r = run_check(baseline, make_release("worse", evals=(("harmlessness", 8, 20), ("over-refusal", 1, 20))))
    assert (
        code == 1
        and "harmlessness:asr_refusal:refusal-detector rose 0.100 -> 0.400" in rules_of(r)["evaluations"]["message"]
    )
    # A candidate sealed without the evaluations the baseline had is not a silent pass.
    code, r = run_check(baseline, make_release("same"))
    assert code == 1 and "has no evaluation for harmlessness:asr_refusal" in rules_of(r)["evaluations"]["message"]


def test_unrelated_models_and_bad_input_exit_2(baseline, make_release, other_base, tmp_path):
    unrelated = make_release("unrelated", base=other_base, name="someone-else")
    code, out = run_check(baseline, unrelated)
    assert code == 2 and "unrelated models" in out
    code, r = run_check(baseline, unrelated, "--allow-unrelated")
    assert code == 1
    code, out = run_check(baseline, tmp_path)
    assert code == 2 and "not a sealed model" in out
    rules = tmp_path / "bad.toml"
    rules.write_text('[guard]\naction = "review"\ntolerence = 0.1\n')
    code, out = run_check(baseline, baseline, "--rules", rules)
    assert code == 2 and "bad.toml:3" in out and "guard.tolerence: unknown field" in out


def test_human_readable_list(baseline, make_release):
    res = CliRunner().invoke(
        app,
        [
            "check",
            "--baseline",
            str(baseline),
            "--candidate",
            str(make_release("relaxed", relax_hard=True, evals=EVALS)),
        ],
    )
    assert res.exit_code == 1
    assert "REFILE [hard_constraints]" in res.output and "verdict: RE-FILING NEEDED" in res.output


def test_data_change_counts_records_by_content(tmp_path):
    import hashlib

    def ds(name, lines):
        p = tmp_path / name
        p.write_text("".join(lines))
        return {
            "stage": "sft",
            "name": "sft.jsonl",
            "path": str(p),
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
        }

    a = ds("a.jsonl", ['{"x": 1}\n', '{"x": 2}\n', '{"x": 3}\n'])
    b = ds("b.jsonl", ['{"x":1}\n', '{"x": 2}\n', '{"x": 4}\n'])  # re-serialised 1 is unchanged
    frac, detail = data_change([a], [b])
    assert frac == pytest.approx(2 / 4) and detail[0]["records_changed"] == 2
    gone = dict(b, path=str(tmp_path / "missing.jsonl"))
    frac, detail = data_change([a], [gone])
    assert frac == 1.0 and "digest changed" in detail[0]["summary"]


def test_guard_rule_compares_retrained_heads_by_validation_figures():
    from charter.governance.check import CheckConfig, CheckResult, ReleaseCheck
    from charter.governance.sealed import SealedModel, SealedStage

    def model(side: dict) -> SealedModel:
        statement = {
            "subject": [{"digest": {"sha256": "r"}}],
            "predicate": {
                "constitution": {"name": "c", "version": "1", "digest": "d", "text": ""},
                "guard": {"sha256": str(side), "target_fpr": 0.01, "categories": [], "sides": {"input": side}},
            },
        }
        return SealedModel([SealedStage("m", statement, "s", False)])

    check = ReleaseCheck(CheckConfig(baseline="a", candidate="b"))
    base = {"head_sha256": "h1", "block_threshold": 0.5, "validation": {"tpr": 0.95, "fpr": 0.01}}
    cases = {
        "same head, higher threshold": (
            {**base, "block_threshold": 0.7},
            "input stage 1 block threshold 0.5000 -> 0.7000",
        ),
        "retrained, lower threshold but worse recall": (
            {"head_sha256": "h2", "block_threshold": 0.3, "validation": {"tpr": 0.80, "fpr": 0.01}},
            "validation TPR 0.950 -> 0.800",
        ),
        "retrained, as good": (
            {"head_sha256": "h2", "block_threshold": 0.9, "validation": {"tpr": 0.96, "fpr": 0.01}},
            None,
        ),
    }
    for name, (cand, expected) in cases.items():
        result = CheckResult({}, {})
        check._guard(model(base), model(cand), result)
        messages = [f.message for f in result.findings]
        assert (expected is None and not messages) or (messages and expected in messages[0]), name


def test_base_model_is_identified_by_content_not_path(baseline, make_release, six_block_model, tmp_path_factory):
    import shutil

    moved = tmp_path_factory.mktemp("moved") / "base"
    shutil.copytree(six_block_model, moved)  # the same weights under another path
    code, r = run_check(baseline, make_release("moved-base", base=moved, evals=EVALS))
    assert "base_model" not in rules_of(r) and r["baseline"]["base_model"].startswith("sha256:")
    assert code == 0, r
