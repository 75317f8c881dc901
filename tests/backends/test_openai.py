import asyncio
import math

import pytest
from servers.openai_server import ServerThread, build_app, free_port

from charter.backends import SamplingConfig, ScoreRequest, load_backend
from charter.backends.hf import HFBackend
from charter.core.errors import BackendError

CONVS = [[{"role": "user", "content": f"Tell me about bread number {i}"}] for i in range(6)]


@pytest.fixture(scope="module")
def local(tiny_model_dir):
    return HFBackend(tiny_model_dir, batch_size=4)


@pytest.fixture(scope="module")
def server(local):
    with ServerThread(build_app(local, "tiny")) as s:
        yield s


def test_generate_over_http_matches_the_local_model(server, local):
    remote = load_backend(f"openai:{server.url}#tiny?concurrency=4")
    cfg = SamplingConfig(max_new_tokens=6, temperature=0.9)
    seeds = list(range(100, 106))
    got = remote.generate(CONVS, cfg, seeds)
    want = [local.generate([c], cfg, seeds=[s])[0] for c, s in zip(CONVS, seeds)]
    assert [g.text for g in got] == [g.text for g in want]
    assert all(g.completion_tokens > 0 for g in got)


def test_requests_run_concurrently(server):
    server.app.state.stats["max_in_flight"] = 0
    remote = load_backend(f"openai:{server.url}#tiny?concurrency=6")
    remote.generate(CONVS, SamplingConfig(max_new_tokens=4, temperature=0))
    assert server.app.state.stats["max_in_flight"] >= 2


def test_chat_scoring_reads_first_token_logprobs(server, local):
    remote = load_backend(f"openai:{server.url}#tiny?top_logprobs=400")
    ctx = CONVS[0]
    conts = ["The", "I"]
    got = remote.score([ScoreRequest(ctx, conts)])[0]
    # With every token in top_logprobs, the first-token score is the local first-token log-prob.
    first = [local._encode(c)[:1] for c in conts]
    want = local.score([ScoreRequest(ctx, [local.tokenizer.decode(f) for f in first])])[0]
    assert got == pytest.approx(want, abs=1e-3)
    assert not remote.supports_exact_scoring


def test_raw_scoring_sums_echo_logprobs_of_the_continuation_tokens(server, local):
    import torch

    remote = load_backend(f"openai:{server.url}#tiny")
    context, conts = "The quick brown fox", [" jumps over", " bakes bread"]
    got = remote.score([ScoreRequest(context, conts)])[0]
    tok = local.tokenizer
    for cont, value in zip(conts, got):
        enc = tok(context + cont, add_special_tokens=False, return_offsets_mapping=True)
        ids = [tok.bos_token_id] + enc["input_ids"]
        with torch.inference_mode():
            logp = torch.log_softmax(local.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        want = sum(
            float(logp[k, t])
            for k, (t, (start, _)) in enumerate(zip(enc["input_ids"], enc["offset_mapping"]))
            if start >= len(context)
        )
        assert value == pytest.approx(want, abs=1e-3)
        assert math.isfinite(value) and value < 0


def test_retries_with_backoff_then_succeeds(local):
    with ServerThread(build_app(local, "tiny", fail_first=2)) as s:
        remote = load_backend(f"openai:{s.url}#tiny?retries=3&backoff=0.01")
        out = remote.generate(CONVS[:1], SamplingConfig(max_new_tokens=3, temperature=0))
        assert len(out) == 1
        assert s.app.state.stats["requests"] == 3


def test_gives_up_after_retries_with_a_one_line_error(local):
    with ServerThread(build_app(local, "tiny", fail_first=10)) as s:
        remote = load_backend(f"openai:{s.url}#tiny?retries=1&backoff=0.01")
        with pytest.raises(BackendError, match="HTTP 503"):
            remote.generate(CONVS[:1], SamplingConfig(max_new_tokens=3))


def test_unknown_model_is_not_retried(server):
    remote = load_backend(f"openai:{server.url}#nope?retries=3&backoff=0.01")
    with pytest.raises(BackendError, match="HTTP 404"):
        remote.generate(CONVS[:1], SamplingConfig(max_new_tokens=3))


def test_unreachable_endpoint_is_a_backend_error():
    port = free_port()  # nothing listens here
    with pytest.raises(BackendError, match="cannot reach") as info:
        load_backend(f"openai:http://127.0.0.1:{port}/v1#m?retries=1&backoff=0.01&timeout=2")
    assert "\n" not in str(info.value)


def test_async_api_is_usable_inside_an_event_loop(server):
    remote = load_backend(f"openai:{server.url}#tiny")

    async def main():
        with pytest.raises(RuntimeError, match="running event loop"):
            remote.generate(CONVS[:1], SamplingConfig(max_new_tokens=2))
        return await remote.agenerate(CONVS[:2], SamplingConfig(max_new_tokens=2, temperature=0))

    assert len(asyncio.run(main())) == 2


def test_raw_scoring_counts_a_token_that_straddles_the_boundary(server, local):
    import torch

    remote = load_backend(f"openai:{server.url}#tiny")
    context, cont = "The answer is: ", "bread"
    [[got]] = remote.score([ScoreRequest(context, [cont])])
    tok = local.tokenizer
    enc = tok(context + cont, add_special_tokens=False, return_offsets_mapping=True)
    ids = [tok.bos_token_id] + enc["input_ids"]
    with torch.inference_mode():
        logp = torch.log_softmax(local.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    covering = [k for k, (a, b) in enumerate(enc["offset_mapping"]) if b > len(context)]
    assert enc["offset_mapping"][covering[0]][0] < len(context), "the test needs a straddling token"
    assert got == pytest.approx(sum(float(logp[k, enc["input_ids"][k]]) for k in covering), abs=1e-3)
