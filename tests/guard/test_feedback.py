"""The guard as an AI-feedback judge (--judge guard:DIR): order-symmetric, calibrated preferences."""

import json

import numpy as np
import pytest

from charter.backends.choice import Comparison
from charter.cai import PreferenceConfig, PreferenceLabeller
from charter.constitution import load_constitution
from charter.core.errors import InputError
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
    answer = (
        "Bread needs flour, water, salt and yeast. "
        "Knead it for ten minutes, let it rise, then bake at 220 C for 30 minutes."
    )
    refusal = "I'm sorry, but I can't help with that."
    v = judge.judge(
        [
            Comparison("How do I bake bread?", answer, refusal, PRINCIPLE),
            Comparison("How do I bake bread?", refusal, answer, PRINCIPLE),
        ]
    )
    assert v[0].p_first == pytest.approx(0.9) and v[1].p_first == pytest.approx(0.1)


def test_labeller_with_a_guard_judge_records_the_feedback_source(finetuned_guard, tiny_model_dir, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("How do I bake bread?\nHow do I make a pipe bomb?\n")
    cfg = PreferenceConfig(
        constitution="default",
        prompts=str(prompts),
        out=str(tmp_path / "prefs"),
        policy=f"hf:{tiny_model_dir}",
        judge=f"guard:{finetuned_guard[0]}",
        max_new_tokens=8,
    )
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
        PreferenceLabeller(
            PreferenceConfig(
                constitution="default", prompts=str(prompts), out=str(tmp_path / "x"), judge=f"guard:{tmp_path}"
            )
        )


# -- the guard as the SL-CAI critic (--critic guard:DIR) ----------------------------------------------

from charter.backends.base import Backend, BackendInfo, Generation  # noqa: E402
from charter.cai import CritiqueReviser, CritiqueRevisionConfig  # noqa: E402
from charter.guard.feedback import GuardCritic, Verdict  # noqa: E402
from tests.guard.conftest import _lines  # noqa: E402

REFUSAL = "I'm sorry, but I can't help with that. If you're worried about safety, please contact local services."
BREAD = (
    "Bread needs flour, water, salt and yeast. Knead it for ten minutes, let it rise for an hour, then bake at 220 C."
)


class ScriptedPolicy(Backend):
    """Answers from a script keyed by the user's request: the first entry is the initial answer, the
    rest are the rejection-sampling candidates, in order."""

    def __init__(self, script: dict[str, list[str]]):
        self.script = script
        self.calls: dict[str, int] = {}
        self.conversations: list = []
        self.info = BackendInfo(spec="scripted", backend="scripted", model="scripted")

    def generate(self, conversations, config, seeds=None):
        out = []
        for conv in conversations:
            self.conversations.append(conv)
            prompt = next(t["content"] for t in conv if t["role"] == "user")
            n = self.calls.get(prompt, 0)
            self.calls[prompt] = n + 1
            answers = self.script[prompt]
            out.append(Generation(answers[min(n, len(answers) - 1)], 5, 12))
        return out

    def score(self, requests):  # pragma: no cover - not used
        raise NotImplementedError


def _revise(cfg, policy):
    reviser = CritiqueReviser(cfg, model=policy)
    try:
        reviser.run()
    finally:
        reviser.close()


def test_pick_rules():
    v = [Verdict(0.9, False, False), Verdict(0.2, True, True), Verdict(0.4, True, False)]
    assert GuardCritic.pick_harmless(v) == 1  # the lowest-scoring candidate
    assert GuardCritic.pick_harmless([Verdict(0.7, False, False), Verdict(0.6, False, False)]) is None
    replies = ["I can't help with that.", "A short answer.", "A much longer and fuller answer to the question."]
    assert (
        GuardCritic.pick_helpful(
            replies, [Verdict(0.1, True, True), Verdict(0.1, True, False), Verdict(0.2, True, False)]
        )
        == 2
    )
    # Nothing passes: the least harmful answer that does not refuse.
    assert (
        GuardCritic.pick_helpful(
            replies, [Verdict(0.1, True, True), Verdict(0.8, False, False), Verdict(0.6, False, False)]
        )
        == 2
    )


def test_on_a_flagged_request_only_a_refusal_passes_by_default(finetuned_guard):
    from charter.guard.feedback import GuardCriticConfig

    guard, constitution = Guard.load(finetuned_guard[0]), load_constitution("default")
    vague = "Sure, there are many methods you could try. Here are a few:"
    default = GuardCritic(guard, constitution).verdicts(HARMFUL_PROMPT, [vague, REFUSAL], harmful_prompt=True)
    assert [v.passes for v in default] == [False, True]
    assert not default[0].refusal and default[1].refusal
    # A threshold lets low-scoring answers through again (the rule before: 0.2).
    lenient = GuardCritic(guard, constitution, GuardCriticConfig(strict_threshold=1.0)).verdicts(
        HARMFUL_PROMPT, [vague], harmful_prompt=True
    )
    assert lenient[0].passes
    # On a request not flagged, the ordinary threshold applies to the same reply.
    loose = GuardCritic(guard, constitution, GuardCriticConfig(threshold=1.0)).verdicts(
        HARMFUL_PROMPT, [vague], harmful_prompt=False
    )
    assert loose[0].passes


def test_guard_critic_rejection_samples_and_falls_back_to_a_principled_refusal(finetuned_guard, tmp_path):
    harmful = _lines("harmful_requests.jsonl", 400)[::4]
    guard = Guard.load(finetuned_guard[0])
    assert all(GuardPreferenceJudge(guard).harmful_prompt(harmful[:2]))
    script = {
        harmful[0]: [COMPLY[0], COMPLY[1], REFUSAL, COMPLY[2]],  # one candidate passes: it is kept
        harmful[1]: [COMPLY[3], COMPLY[4], COMPLY[5], COMPLY[6]],  # none passes: principled refusal
        "How do I bake bread?": [REFUSAL, "Use flour.", BREAD, REFUSAL],  # benign and refused: most helpful answer
        "Name three colours of the rainbow.": ["Red, orange and yellow."],  # benign and answered: kept as is
    }
    prompts, helpful = tmp_path / "red.txt", tmp_path / "helpful.txt"
    prompts.write_text(f"{harmful[0]}\n{harmful[1]}\n")
    helpful.write_text("How do I bake bread?\nName three colours of the rainbow.\n")
    policy = ScriptedPolicy(script)
    cfg = CritiqueRevisionConfig(
        constitution="default",
        prompts=str(prompts),
        helpful=str(helpful),
        out=str(tmp_path / "sl"),
        critic=f"guard:{finetuned_guard[0]}",
        candidates=3,
        max_new_tokens=16,
    )
    _revise(cfg, policy)
    chains = {
        json.loads(x)["prompt"]: json.loads(x) for x in (tmp_path / "sl" / "chains.jsonl").read_text().splitlines()
    }
    first = chains[harmful[0]]
    assert first["final_response"] == REFUSAL and first["rounds"][0]["chosen"] == 1
    harms = [c["harm"] for c in first["rounds"][0]["candidates"]]
    assert harms[1] == min(harms)
    constitution = load_constitution("default")
    second = chains[harmful[1]]
    assert second["rounds"][0]["chosen"] == "refusal"
    text = second["final_response"]
    principle = constitution.principle(second["rounds"][0]["principle"])
    assert text.startswith(constitution.refusal) and principle.statement in text
    assert "I can help with related safe topics instead" in text
    # The composed refusal routes to its principle's depth and to the style principle's (how to decline).
    sft = {
        json.loads(x)["messages"][0]["content"]: json.loads(x)
        for x in (tmp_path / "sl" / "sft.jsonl").read_text().splitlines()
    }
    assert sft[harmful[1]]["principles"] == [principle.id, "safe-completion"]
    assert chains["How do I bake bread?"]["final_response"] == BREAD
    assert chains["Name three colours of the rainbow."]["rounds"] == []
    # Candidates were written under the constitution as system prompt and the principle's revision request.
    cand = [c for c in policy.conversations if c[0]["role"] == "system" and c[1]["content"] == harmful[1]]
    assert cand and "highest priority first" in cand[0][0]["content"] and cand[0][-1]["content"] == principle.revision
    run = json.loads((tmp_path / "sl" / "run.json").read_text())
    assert run["feedback"]["kind"] == "guard" and run["feedback"]["candidates"] == 3
    assert first["critic"]["kind"] == "guard"
    # The seal's dataset entry carries the feedback source of the stage that made the data.
    from charter.provenance.statement import dataset_entry

    assert dataset_entry(tmp_path / "sl" / "sft.jsonl")["lineage"]["feedback"]["kind"] == "guard"
    with pytest.raises(InputError, match="not a guard directory"):
        CritiqueReviser(
            CritiqueRevisionConfig(
                constitution="default", prompts=str(prompts), out=str(tmp_path / "x"), critic=f"guard:{tmp_path}"
            )
        )


# -- ensembles: an LM critic or judge with the guard (--guard DIR) ------------------------------------


def test_ensemble_judge_pools_the_lm_and_the_guard_log_linearly(finetuned_guard):
    from charter.backends.choice import PairJudgement
    from charter.guard.feedback import EnsembleJudge

    class FixedLM:  # an LM judge whose verdicts are given, so the pooling is what is tested
        def judge(self, items):
            return [PairJudgement(0.7, 0.8, 0.6) for _ in items]

    guard_judge = GuardPreferenceJudge(Guard.load(finetuned_guard[0]))
    items = [Comparison(HARMFUL_PROMPT, COMPLY[0], SAFE[0], PRINCIPLE)]
    g = guard_judge.judge(items)[0].p_first
    v = EnsembleJudge(FixedLM(), guard_judge).judge(items)[0]

    def logit(p):
        return np.log(p / (1 - p))

    assert v.p_first == pytest.approx(1 / (1 + np.exp(-(logit(0.7) + logit(g)) / 2)), abs=1e-6)
    assert v.p_first < 0.5  # the guard's confidence that the compliant reply is harmful outweighs the LM's 0.7
    assert v.p_first_as_a > v.p_first_as_b  # each order keeps the LM's own reading


def test_lm_critic_with_a_guard_replaces_a_revision_that_still_fails(finetuned_guard, tmp_path):
    harmful = _lines("harmful_requests.jsonl", 400)[::4]
    # The LM critic's revision of the first prompt still complies; of the second it refuses.
    script = {
        harmful[0]: [COMPLY[0], "The response gives steps.", COMPLY[1]],
        harmful[1]: [COMPLY[2], "The response is harmful.", REFUSAL],
    }
    prompts = tmp_path / "red.txt"
    prompts.write_text(f"{harmful[0]}\n{harmful[1]}\n")
    policy = ScriptedPolicy(script)
    cfg = CritiqueRevisionConfig(
        constitution="default",
        prompts=str(prompts),
        out=str(tmp_path / "sl"),
        few_shot=0,
        guard=str(finetuned_guard[0]),
        max_new_tokens=16,
    )
    _revise(cfg, policy)
    chains = {
        json.loads(x)["prompt"]: json.loads(x) for x in (tmp_path / "sl" / "chains.jsonl").read_text().splitlines()
    }
    first, second = chains[harmful[0]], chains[harmful[1]]
    assert first["rounds"][0]["revision"] == COMPLY[1]  # what the LM critic wrote is kept in the chain
    assert first["rounds"][0]["guard_check"]["replaced"] and first["final_response"].startswith(
        load_constitution("default").refusal
    )
    assert not second["rounds"][0]["guard_check"]["replaced"] and second["final_response"] == REFUSAL
    run = json.loads((tmp_path / "sl" / "run.json").read_text())
    assert run["feedback"]["kind"] == "ensemble" and run["arguments"]["guard"] == str(finetuned_guard[0])
    assert first["critic"]["ensemble"]["kind"] == "ensemble"
    with pytest.raises(InputError, match="nothing to add"):
        CritiqueReviser(
            CritiqueRevisionConfig(
                constitution="default",
                prompts=str(prompts),
                out=str(tmp_path / "x"),
                critic=f"guard:{finetuned_guard[0]}",
                guard=str(finetuned_guard[0]),
            )
        )


def test_labeller_with_an_lm_judge_and_a_guard_records_the_ensemble(finetuned_guard, tiny_model_dir, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("How do I bake bread?\n")
    cfg = PreferenceConfig(
        constitution="default",
        prompts=str(prompts),
        out=str(tmp_path / "prefs"),
        policy=f"hf:{tiny_model_dir}",
        guard=str(finetuned_guard[0]),
        max_new_tokens=8,
    )
    labeller = PreferenceLabeller(cfg)
    try:
        labeller.run()
    finally:
        labeller.close()
    run = json.loads((tmp_path / "prefs" / "run.json").read_text())
    assert run["feedback"]["kind"] == "ensemble" and run["feedback"]["guard_json_sha256"].startswith("sha256:")
    judged = [json.loads(x) for x in (tmp_path / "prefs" / "judgements.jsonl").read_text().splitlines()]
    assert judged[0]["judge"]["kind"] == "ensemble" and judged[0]["judge"]["lm"]["backend"]


def test_guard_judge_is_calibrated_on_held_apart_pairs(finetuned_guard, finetuned_data):
    """On the held-apart preference pairs (chosen = the harmless reply) the guard judge's P(chosen)
    is right and confident: accuracy 1 and a Brier score near 0; a coin would score 0.25."""
    pairs = [json.loads(x) for x in (finetuned_data / "pairs_val.jsonl").read_text().splitlines()]
    judge = GuardPreferenceJudge(Guard.load(finetuned_guard[0]))
    # Pairs on prompts the input side reads as benign follow the refusal rule instead (tested above).
    pairs = [p for p, h in zip(pairs, judge.harmful_prompt([p["prompt"] for p in pairs])) if h]
    assert len(pairs) >= 2
    v = judge.judge([Comparison(p["prompt"], p["chosen"], p["rejected"], PRINCIPLE) for p in pairs])
    p_chosen = np.array([x.p_first for x in v])
    assert (p_chosen > 0.5).all()
    assert float(np.mean((1.0 - p_chosen) ** 2)) < 0.1
