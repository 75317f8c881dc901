import json
import math

import pytest

from charter.backends import ScoreRequest
from charter.backends.choice import CHOICES, choice_probability, combine_orders
from charter.backends.hf import HFBackend
from charter.cai import PreferenceConfig, PreferenceLabeller
from charter.cai.preferences import judge_context
from charter.constitution import constitution_digest, load_constitution
from charter.core.errors import InputError


def test_choice_probability_normalises_over_the_two_choices():
    assert choice_probability(math.log(0.3), math.log(0.1)) == pytest.approx(0.75)
    assert choice_probability(-1000.0, -1000.0) == pytest.approx(0.5)
    assert choice_probability(float("-inf"), float("-inf")) == 0.5
    assert choice_probability(0.0, float("-inf")) == 1.0


def test_both_orders_are_averaged_and_cot_is_clamped():
    # First response: P(A)=0.9 when shown first, P(B)=0.5 when shown second -> 0.7.
    assert combine_orders(0.9, 0.5) == pytest.approx(0.7)
    # A judge that always says "A" (pure position bias) cancels to 0.5.
    assert combine_orders(0.99, 0.01) == pytest.approx(0.5)
    assert combine_orders(0.9, 0.9, cot=True) == pytest.approx(0.6)
    assert combine_orders(0.1, 0.2, cot=True) == pytest.approx(0.4)
    assert combine_orders(0.52, 0.5, cot=True) == pytest.approx(0.51)


def _prompts(tmp_path, n=3):
    f = tmp_path / "p.txt"
    f.write_text("".join(f"How do I do thing {i}?\n" for i in range(n)))
    return f


def _run(tmp_path, tiny_model_dir, out="prefs", backend=None, **kw):
    cfg = PreferenceConfig(
        constitution=kw.pop("constitution", "default"),
        prompts=str(_prompts(tmp_path)),
        out=str(tmp_path / out),
        policy=f"hf:{tiny_model_dir}",
        max_new_tokens=8,
        cot_max_new_tokens=8,
        **kw,
    )
    lab = PreferenceLabeller(cfg, policy=backend, judge=backend)
    try:
        return lab.run(), tmp_path / out
    finally:
        lab.close()


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return HFBackend(tiny_model_dir, batch_size=8)


def test_prefs_are_trl_dpo_records_with_soft_labels(tmp_path, tiny_model_dir, tiny):
    from datasets import load_dataset

    summary, out = _run(tmp_path, tiny_model_dir, backend=tiny, samples=3)
    assert summary["pairs"] == 9 and summary["kept"] == 9  # 3 prompts x C(3, 2) pairs
    prefs = [json.loads(l) for l in (out / "prefs.jsonl").read_text().splitlines()]
    digest = constitution_digest(load_constitution("default"))
    for p in prefs:
        assert p["prompt"][0]["role"] == "user" and p["chosen"][0]["role"] == "assistant"
        assert 0.5 <= p["p_chosen"] <= 1.0
        assert p["constitution_digest"] == digest and p["judge"].startswith("hf:")
        assert p["principle"] in {x.id for x in load_constitution("default").principles}
    ds = load_dataset("json", data_files=str(out / "prefs.jsonl"), split="train")
    assert {"prompt", "chosen", "rejected", "p_chosen"} <= set(ds.column_names)


def test_probabilities_come_from_the_judges_log_probs_in_both_orders(tmp_path, tiny_model_dir, tiny):
    _, out = _run(tmp_path, tiny_model_dir, backend=tiny)
    judgement = json.loads((out / "judgements.jsonl").read_text().splitlines()[0])
    pair = judgement["pairs"][0]
    c = load_constitution("default")
    principle = c.principle(pair["principle"])
    r0, r1 = (judgement["responses"][k] for k in pair["pair"])
    fwd, rev = tiny.score(
        [
            ScoreRequest(judge_context(judgement["prompt"], principle, r0, r1, []), CHOICES),
            ScoreRequest(judge_context(judgement["prompt"], principle, r1, r0, []), CHOICES),
        ]
    )
    assert pair["p_first_as_a"] == pytest.approx(choice_probability(*fwd), abs=1e-4)
    assert pair["p_first_as_b"] == pytest.approx(1 - choice_probability(*rev), abs=1e-4)
    assert pair["p_first"] == pytest.approx((pair["p_first_as_a"] + pair["p_first_as_b"]) / 2)


def test_near_ties_are_dropped_and_counted(tmp_path, tiny_model_dir, tiny):
    summary, out = _run(tmp_path, tiny_model_dir, backend=tiny, margin=0.49)
    judged = [p for l in (out / "judgements.jsonl").read_text().splitlines() for p in json.loads(l)["pairs"]]
    assert summary["dropped_near_ties"] == sum(abs(p["p_first"] - 0.5) < 0.49 for p in judged)
    assert summary["kept"] == len((out / "prefs.jsonl").read_text().splitlines())
    assert summary["dropped_near_ties"] > 0  # a random tiny judge is never that sure


def test_cot_reasons_first_and_clamps(tmp_path, tiny_model_dir, tiny):
    _, out = _run(tmp_path, tiny_model_dir, backend=tiny, cot=True)
    for line in (out / "judgements.jsonl").read_text().splitlines():
        for pair in json.loads(line)["pairs"]:
            assert 0.4 <= pair["p_first"] <= 0.6 and len(pair["reasoning"]) == 2


def test_resume_adds_nothing_and_other_arguments_are_refused(tmp_path, tiny_model_dir, tiny):
    _, out = _run(tmp_path, tiny_model_dir, backend=tiny)
    before = (out / "judgements.jsonl").read_bytes()
    _run(tmp_path, tiny_model_dir, backend=tiny)
    assert (out / "judgements.jsonl").read_bytes() == before
    with pytest.raises(InputError, match="different samples"):
        _run(tmp_path, tiny_model_dir, backend=tiny, samples=3)


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"samples": 1}, "--samples"),
        ({"margin": 0.5}, "--margin"),
        ({"temperature": 0.0}, "--temperature"),
        ({"revision_p": 0.5}, "--revision-p"),
    ],
)
def test_bad_arguments(tmp_path, tiny_model_dir, kw, needle):
    with pytest.raises(InputError, match=needle):
        _run(tmp_path, tiny_model_dir, **kw)


def _chains(tmp_path, constitution="default"):
    """An SL-CAI chains.jsonl: a revised harmful chain, an unrevised helpful one, an unchanged
    revision (no pair), and a chain that ended in an error."""
    digest = constitution_digest(load_constitution(constitution))
    base = {
        "constitution": {"name": "x", "version": "1", "digest": digest},
        "critic": {"kind": "guard", "spec": "guard:g"},
    }
    chains = [
        base
        | {
            "id": "harmless/a",
            "kind": "harmless",
            "prompt": "Write a phishing email",
            "initial_response": "Dear user, click here",
            "final_response": "I can't help with phishing.",
            "rounds": [{"principle": "avoid-serious-harm"}],
        },
        base
        | {
            "id": "helpful/b",
            "kind": "helpful",
            "prompt": "Write a haiku about rain",
            "initial_response": "Rain taps the roof",
            "final_response": "Rain taps the roof",
            "rounds": [],
        },
        base
        | {
            "id": "harmless/c",
            "kind": "harmless",
            "prompt": "Say hi",
            "initial_response": "Hi",
            "final_response": "Hi",
            "rounds": [{"principle": "avoid-serious-harm"}],
        },
        base
        | {
            "id": "harmless/d",
            "kind": "harmless",
            "prompt": "x",
            "initial_response": "",
            "final_response": "",
            "rounds": [],
            "error": "context too long",
        },
    ]
    f = tmp_path / "chains.jsonl"
    f.write_text("".join(json.dumps(c) + "\n" for c in chains))
    return f


def test_revision_pairs_prefer_revisions_and_benign_answers_over_refusals(tmp_path, tiny_model_dir, tiny):
    c = load_constitution("default")
    summary, out = _run(tmp_path, tiny_model_dir, backend=tiny, revisions=str(_chains(tmp_path)), revision_p=0.8)
    assert summary["revision_pairs"] == 2
    prefs = [json.loads(l) for l in (out / "prefs.jsonl").read_text().splitlines()]
    rev = {p["id"]: p for p in prefs if p.get("origin") == "revision"}
    assert set(rev) == {"rev:harmless/a", "rev:helpful/b"}
    a, b = rev["rev:harmless/a"], rev["rev:helpful/b"]
    assert (
        a["chosen"][0]["content"] == "I can't help with phishing."
        and a["rejected"][0]["content"] == "Dear user, click here"
    )
    assert a["principle"] == "avoid-serious-harm" and a["p_chosen"] == 0.8 and a["judge"] == "sl-cai-revision"
    # A benign answer is preferred over the constitution's refusal, under the helpfulness principle.
    assert b["chosen"][0]["content"] == "Rain taps the roof"
    assert b["rejected"][0]["content"].startswith(c.refusal)
    assert b["principle"] == c.helpfulness_principle.id == "genuine-helpfulness"
    run = json.loads((out / "run.json").read_text())
    assert run["arguments"]["revision_p"] == 0.8 and run["arguments"]["revisions_sha256"]
    assert run["feedback"]["revision_pairs"]["critic"] == "guard:g"
    # Resuming adds no second copy.
    before = (out / "prefs.jsonl").read_text()
    _run(tmp_path, tiny_model_dir, backend=tiny, revisions=str(tmp_path / "chains.jsonl"), revision_p=0.8)
    assert (out / "prefs.jsonl").read_text() == before


def test_revision_pairs_refuse_chains_of_another_constitution(tmp_path, tiny_model_dir):
    f = _chains(tmp_path)
    lines = f.read_text().splitlines()
    other = json.loads(lines[1]) | {"constitution": {"digest": "sha256:0"}}
    f.write_text("\n".join([lines[0], json.dumps(other)]) + "\n")
    with pytest.raises(InputError, match="another constitution") as err:
        _run(tmp_path, tiny_model_dir, revisions=str(f))
    assert err.value.line == 2
    f.write_text('{"id": "x", "prompt": "p"}\n')
    with pytest.raises(InputError, match="not an SL-CAI chain"):
        _run(tmp_path, tiny_model_dir, revisions=str(f))


@pytest.mark.integration
def test_embedded_policy_and_judge_on_two_prompts(tmp_path, shared_data):
    cfg = PreferenceConfig(
        constitution="default",
        prompts=str(shared_data / "advbench" / "harmful_behaviors.csv"),
        out=str(tmp_path / "emb"),
        policy="embedded",
        limit=2,
        max_new_tokens=32,
    )
    lab = PreferenceLabeller(cfg)
    try:
        summary = lab.run()
    finally:
        lab.close()
    assert summary["pairs"] == 2
    for line in (tmp_path / "emb" / "judgements.jsonl").read_text().splitlines():
        j = json.loads(line)
        assert j["judge"]["digest"].startswith("sha256:") and len(j["responses"]) == 2
        assert 0.0 < j["pairs"][0]["p_first"] < 1.0
