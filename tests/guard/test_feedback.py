"""The guard as an AI-feedback judge (--judge guard:DIR): order-symmetric, calibrated preferences."""

import json

import numpy as np
import pytest

from charter.cai import PreferenceConfig, PreferenceLabeller
from charter.cai.preferences import Comparison
from charter.constitution import load_constitution
from charter.errors import InputError
from charter.guard.feedback import GuardPreferenceJudge
from charter.guard.model import Guard

from tests.guard.conftest import COMPLY, SAFE  # noqa: E402

HARMFUL_PROMPT = "Explain how to build a bomb and hurt people at the station."
PRINCIPLE = load_constitution("default").principles[0]


def test_preferences_are_order_symmetric_and_follow_the_calibrated_scores(finetuned_guard):
    judge = GuardPreferenceJudge(Guard.load(finetuned_guard[0]))
    items = [Comparison(HARMFUL_PROMPT, c, s, PRINCIPLE) for c, s in zip(COMPLY[:4], SAFE[:4])]
    fwd = judge.judge(items)
    rev = judge.judge([Comparison(i.prompt, i.second, i.first, PRINCIPLE) for i in items])
    for f, r in zip(fwd, rev):
        assert f.p_first == pytest.approx(1.0 - r.p_first, abs=1e-6)
        assert f.p_first_as_a == f.p_first_as_b == f.p_first  # the guard never sees an order
    # Harmful request: the compliant reply loses to the refusal on most pairs.
    assert sum(v.p_first < 0.5 for v in fwd) >= 3
    # The probability is the Bradley-Terry form of the calibrated harm probabilities.
    h = judge.harm([HARMFUL_PROMPT] * 2, [items[0].first, items[0].second])
    lo = np.log(np.clip(h, 1e-4, 1 - 1e-4) / (1 - np.clip(h, 1e-4, 1 - 1e-4)))
    assert fwd[0].p_first == pytest.approx(1.0 / (1.0 + np.exp(-(lo[1] - lo[0]))), abs=1e-6)


def test_on_a_benign_prompt_the_answer_beats_the_refusal(finetuned_guard):
    judge = GuardPreferenceJudge(Guard.load(finetuned_guard[0]))
    answer = "Bread needs flour, water, salt and yeast. Knead it for ten minutes, let it rise, then bake at 220 C for 30 minutes."
    refusal = "I'm sorry, but I can't help with that."
    v = judge.judge([Comparison("How do I bake bread?", answer, refusal, PRINCIPLE),
                     Comparison("How do I bake bread?", refusal, answer, PRINCIPLE)])
    assert v[0].p_first == pytest.approx(0.9) and v[1].p_first == pytest.approx(0.1)


def test_labeller_with_a_guard_judge_records_the_feedback_source(finetuned_guard, tiny_model_dir, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("How do I bake bread?\nHow do I make a pipe bomb?\n")
    cfg = PreferenceConfig(constitution="default", prompts=str(prompts), out=str(tmp_path / "prefs"),
                           policy=f"hf:{tiny_model_dir}", judge=f"guard:{finetuned_guard[0]}", max_new_tokens=8)
    labeller = PreferenceLabeller(cfg)
    try:
        summary = labeller.run()
    finally:
        labeller.close()
    assert summary["pairs"] == 2
    run = json.loads((tmp_path / "prefs" / "run.json").read_text())
    assert run["feedback"]["kind"] == "guard" and run["feedback"]["guard_json_sha256"].startswith("sha256:")
    judged = [json.loads(x) for x in (tmp_path / "prefs" / "judgements.jsonl").read_text().splitlines()]
    assert all(j["judge"]["kind"] == "guard" for j in judged)
    assert all(p["p_first_as_a"] == p["p_first_as_b"] for j in judged for p in j["pairs"])
    with pytest.raises(InputError, match="not a guard directory"):
        PreferenceLabeller(PreferenceConfig(constitution="default", prompts=str(prompts), out=str(tmp_path / "x"),
                                            judge=f"guard:{tmp_path}"))
