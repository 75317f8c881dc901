import pytest
import torch

from charter.backends import SamplingConfig, ScoreRequest, load_backend
from charter.backends.hf import HFBackend
from charter.core.errors import BackendError

CONVS = [
    [{"role": "user", "content": "How do I bake bread?"}],
    [{"role": "user", "content": "hi"}],
    [{"role": "user", "content": "The quick brown fox jumps over the lazy dog and then"}],
]


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return HFBackend(tiny_model_dir, batch_size=2)


def test_generate_returns_one_generation_per_conversation(backend):
    gens = backend.generate(CONVS, SamplingConfig(max_new_tokens=8, temperature=0.8), seeds=[1, 2, 3])
    assert len(gens) == 3
    for g in gens:
        assert g.completion_tokens <= 8
        assert g.prompt_tokens > 0
        assert g.finish_reason in ("stop", "length")


def test_sampling_depends_on_each_sequences_own_seed_not_its_batch(backend):
    cfg = SamplingConfig(max_new_tokens=12, temperature=1.0, top_p=0.9)
    batched = backend.generate(CONVS, cfg, seeds=[11, 12, 13])
    reversed_ = backend.generate(CONVS[::-1], cfg, seeds=[13, 12, 11])[::-1]
    alone = [backend.generate([c], cfg, seeds=[s])[0] for c, s in zip(CONVS, [11, 12, 13])]
    assert [g.text for g in batched] == [g.text for g in reversed_] == [g.text for g in alone]
    other_seed = backend.generate(CONVS[:1], cfg, seeds=[99])[0]
    # A random 400-token model almost never repeats 12 sampled tokens under another seed.
    assert other_seed.text != batched[0].text


def test_greedy_is_deterministic(backend):
    cfg = SamplingConfig(max_new_tokens=10, temperature=0)
    assert backend.generate(CONVS, cfg) == backend.generate(CONVS, cfg)


def test_score_matches_a_manual_forward_pass(backend):
    context, cont = CONVS[0], " Mix flour"
    [[got]] = backend.score([ScoreRequest(context, [cont])])
    ctx_ids = backend._encode(backend.render(context))
    ids = ctx_ids + backend._encode(cont)
    with torch.inference_mode():
        logp = torch.log_softmax(backend.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    want = sum(float(logp[i - 1, ids[i]]) for i in range(len(ctx_ids), len(ids)))
    assert got == pytest.approx(want, abs=1e-3)


def test_score_is_batch_invariant_and_orders_continuations(backend):
    reqs = [ScoreRequest(CONVS[0], [" (A)", " (B)", " bread"]), ScoreRequest("The answer is:", [" (A)", " x"])]
    together = backend.score(reqs)
    alone = [backend.score([r])[0] for r in reqs]
    assert [len(r) for r in together] == [3, 2]
    for a, b in zip(together, alone):
        assert a == pytest.approx(b, abs=1e-3)
    assert all(v < 0 for row in together for v in row)


def test_hf_spec_loads_with_options(tiny_model_dir):
    b = load_backend(f"hf:{tiny_model_dir}?batch_size=3&dtype=float32")
    assert b.info.backend == "hf" and b.batch_size == 3
    assert b.info.to_dict()["spec"].startswith("hf:")


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("hf:/no/such/dir", "no such model directory"),
        ("gguf:/no/such/file.gguf", "no such model file"),
        ("hf:/tmp", "not a transformers model directory"),
    ],
)
def test_bad_local_models_raise_backend_error(spec, needle):
    with pytest.raises(BackendError, match=needle):
        load_backend(spec)


def test_single_token_choices_read_one_position_and_match_a_manual_pass(backend):
    # "A"/"B" are one token each: one forward of the context, left-padded beside a longer one.
    reqs = [
        ScoreRequest(CONVS[0], ["A", "B"]),
        ScoreRequest(
            CONVS[0] + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "and now?"}], ["A", "B"]
        ),
    ]
    got = backend.score(reqs)
    for req, row in zip(reqs, got):
        ctx_ids = backend._encode(backend.render(req.context))
        with torch.inference_mode():
            logp = torch.log_softmax(backend.model(input_ids=torch.tensor([ctx_ids])).logits[0, -1].float(), -1)
        for cont, value in zip(req.continuations, row):
            [tok] = backend._encode(cont)
            assert value == pytest.approx(float(logp[tok]), abs=1e-3)


def test_a_shared_prefix_is_computed_once_with_the_same_scores(backend):
    long_system = "You judge answers under these principles: " + "be honest, be harmless, be helpful; " * 6
    reqs = [
        ScoreRequest([{"role": "system", "content": long_system}, {"role": "user", "content": q}], ["A", "B"])
        for q in ("Which is better?", "Pick one, (A) or (B), please.", "Answer:")
    ]
    n, _ = backend._shared_prefix([backend._encode(backend.render(r.context)) for r in reqs])
    assert n >= backend.MIN_SHARED_PREFIX
    together = backend.score(reqs)
    for req, row in zip(reqs, together):
        ctx_ids = backend._encode(backend.render(req.context))
        with torch.inference_mode():
            logp = torch.log_softmax(backend.model(input_ids=torch.tensor([ctx_ids])).logits[0, -1].float(), -1)
        assert row == pytest.approx([float(logp[backend._encode(c)[0]]) for c in req.continuations], abs=1e-3)
