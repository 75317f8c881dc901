"""SL-CAI throughput on the embedded model, every figure a ratio against baselines in this run.

(a) naive: a plain transformers loop, one prompt at a time, initial -> critique -> revision;
(b) Charter's batched, stage-pipelined CritiqueReviser on each installed backend;
(c) the raw engines replaying exactly the generation calls Charter made, with no Charter code:
    llama-cpp-python's own ``create_chat_completion`` (one sequence at a time) set up at its best —
    the same GGUF file, the same threads, n_ctx per sequence, n_batch/n_ubatch and KV-cache type as
    Charter's llama.cpp backend, run once with its prompt cache (``LlamaRAMCache``) and once
    without, the faster of the two being the baseline — and transformers' batched ``generate``.
    Every baseline's settings are written to the JSON (each run's ``settings``; ``baseline_llamacpp``).
Also: first load of the embedded model (GGUF parse + dequantise) vs the cached safetensors load.

    .venv/bin/python bench/cai_throughput.py [--n 8] [--max-new-tokens 128] [--no-extra-bufts]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CHARTER_PROGRESS", "0")

import torch  # noqa: E402
from _util import print_table, timer, write_results  # noqa: E402

from charter.backends import Backend, SamplingConfig, embedded_gguf_path, llamacpp_available, load_backend  # noqa: E402
from charter.backends.hf import dequantised_gguf_dir  # noqa: E402
from charter.cai import CritiqueReviser, CritiqueRevisionConfig  # noqa: E402
from charter.constitution import load_constitution  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class RecordingBackend(Backend):
    """Delegates to a real backend and records every generation (for replay and token counts)."""

    def __init__(self, inner: Backend):
        self.inner, self.info, self.calls, self._pending = inner, inner.info, [], {}
        self.continuous_batching = inner.continuous_batching

    def generate(self, conversations, config, seeds=None):
        out = self.inner.generate(conversations, config, seeds)
        self.calls += [(c, config, g) for c, g in zip(conversations, out)]
        return out

    def submit(self, key, conversation, config, seed):
        self._pending[key] = (conversation, config)
        self.inner.submit(key, conversation, config, seed)

    def step(self):
        out = self.inner.step()
        for key, g in out:
            conv, config = self._pending.pop(key)
            self.calls.append((conv, config, g))
        return out

    def busy(self):
        return self.inner.busy()

    def score(self, requests):
        return self.inner.score(requests)

    @property
    def tokens(self) -> int:
        return sum(g.completion_tokens for _, _, g in self.calls)


def naive_loop(prompts, constitution, model_dir: Path, cfg: SamplingConfig, revisions: int) -> dict:
    """What one writes without Charter: a transformers loop, one prompt and one stage at a time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rng = random.Random(0)
    tokens = 0

    def gen(messages):
        nonlocal tokens
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = model.generate(
                **ids,
                max_new_tokens=cfg.max_new_tokens,
                do_sample=True,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                pad_token_id=tok.eos_token_id,
            )
        new = out[0, ids["input_ids"].shape[1] :]
        tokens += int((new != tok.eos_token_id).sum())
        return tok.decode(new, skip_special_tokens=True).strip()

    with timer() as t:
        for p in prompts:
            response = gen([{"role": "user", "content": p.text}])
            for _ in range(revisions):
                principle = rng.choice(constitution.principles)
                shots = []
                for ex in rng.sample(list(constitution.examples_for(principle)), 1):
                    shots += [
                        {"role": "user", "content": ex.prompt},
                        {"role": "assistant", "content": ex.response},
                        {"role": "user", "content": ex.critique_request or principle.critique},
                        {"role": "assistant", "content": ex.critique},
                        {"role": "user", "content": ex.revision_request or principle.revision},
                        {"role": "assistant", "content": ex.revision},
                    ]
                ctx = shots + [
                    {"role": "user", "content": p.text},
                    {"role": "assistant", "content": response},
                    {"role": "user", "content": principle.critique},
                ]
                critique = gen(ctx)
                response = gen(
                    ctx + [{"role": "assistant", "content": critique}, {"role": "user", "content": principle.revision}]
                )
    return {"seconds": t["s"], "records": len(prompts), "tokens": tokens}


def charter_run(spec: str, args, prompts_file: Path, scope: str = "critique") -> tuple[dict, RecordingBackend]:
    backend = RecordingBackend(load_backend(spec))
    with tempfile.TemporaryDirectory() as out:
        cfg = CritiqueRevisionConfig(
            constitution=args.constitution,
            prompts=str(prompts_file),
            out=out,
            model=spec,
            limit=args.n,
            revisions=args.revisions,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            seed=0,
            few_shot_scope=scope,
        )
        reviser = CritiqueReviser(cfg, model=backend, critic=backend)
        with timer() as t:
            summary = reviser.run()
    return {"seconds": t["s"], "records": summary["records"], "tokens": backend.tokens}, backend


def no_extra_bufts() -> None:
    """Every llama.cpp model loaded in this process (Charter's backend and llama-cpp-python's
    ``Llama`` both start from ``llama_model_default_params``) keeps its weights in plain CPU buffers."""
    import llama_cpp
    import llama_cpp.llama_cpp as low

    default = low.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = False
        return p

    low.llama_model_default_params = llama_cpp.llama_model_default_params = params


def llamacpp_settings(options: dict) -> dict:
    """The raw llama-cpp-python baseline's settings, matched to what Charter's llama.cpp backend
    used in this run (``options`` is its BackendInfo.options; the context figures are the ones
    ``charter.backends.llamacpp`` sets: n_batch 2048, n_ubatch 512, f16 KV cache)."""
    import llama_cpp

    return {
        "n_threads": int(options["n_threads"]),
        "n_threads_batch": int(options["n_threads"]),
        "n_ctx": int(options["n_ctx"]),
        "n_batch": 2048,
        "n_ubatch": 512,
        "kv_cache_type": "f16",
        # Charter leaves llama.cpp's default (auto), which picks flash attention on CPU;
        # llama-cpp-python's Llama defaults to off, so the baseline turns it on.
        "flash_attn": True,
        "model_file": embedded_gguf_path().name,
        "llama_cpp_python": llama_cpp.__version__,
        # Charter's temperature and top-p per call; the rest are create_chat_completion's
        # defaults (top_k 40 truncates before top-p, which makes its sampling cheaper, not dearer).
        "sampler": "temperature, top_p from each call; top_k 40, min_p 0.05, repeat_penalty 1.0 (defaults); seed 1",
        "sequences_at_once": 1,
        "use_extra_bufts": bool(llama_cpp.llama_model_default_params().use_extra_bufts),
    }


def raw_llamacpp(calls, settings: dict, cache: bool) -> dict:
    """llama-cpp-python's high-level API replaying Charter's calls, one sequence at a time, with
    Charter's threads, context and batch sizes; with ``cache``, its RAM prompt cache (a saved KV
    state per finished prompt+completion, restored for the longest matching prefix) on top of the
    prefix reuse every ``Llama`` does with the previous prompt."""
    import ctypes

    from llama_cpp import Llama, LlamaRAMCache, llama_model_desc

    llm = Llama(
        str(embedded_gguf_path()),
        n_ctx=settings["n_ctx"],
        n_batch=settings["n_batch"],
        n_ubatch=settings["n_ubatch"],
        n_threads=settings["n_threads"],
        n_threads_batch=settings["n_threads_batch"],
        flash_attn=settings["flash_attn"],
        verbose=False,
    )
    buf = ctypes.create_string_buffer(256)
    llama_model_desc(llm.model, buf, len(buf))
    used = dict(
        settings,
        model_desc=buf.value.decode(),
        n_threads=llm.context_params.n_threads,
        n_threads_batch=llm.context_params.n_threads_batch,
        n_ctx=llm.n_ctx(),
        n_batch=llm.n_batch,
        n_ubatch=llm.context_params.n_ubatch,
        prompt_cache=None,
    )
    if cache:
        llm.set_cache(LlamaRAMCache(capacity_bytes=2 << 30))
        used["prompt_cache"] = "LlamaRAMCache(capacity_bytes=2 GiB)"
    tokens = 0
    with timer() as t:
        for conv, cfg, _ in calls:
            r = llm.create_chat_completion(
                messages=conv, max_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=1
            )
            tokens += r["usage"]["completion_tokens"]
    return {"seconds": t["s"], "tokens": tokens, "settings": used}


def raw_transformers(calls, model_dir: Path, batch_size: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokens = 0
    with timer() as t:
        # The same conversations, in the order Charter finished them, in batches of batch_size.
        for i in range(0, len(calls), batch_size):
            chunk = calls[i : i + batch_size]
            cfg = chunk[0][1]
            texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c, _, _ in chunk]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                out = model.generate(
                    **enc,
                    max_new_tokens=cfg.max_new_tokens,
                    do_sample=True,
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    pad_token_id=tok.pad_token_id or tok.eos_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            tokens += int(((new != tok.eos_token_id) & (new != tok.pad_token_id)).sum())
    return {
        "seconds": t["s"],
        "tokens": tokens,
        "settings": {
            "dtype": "float32",
            "batch_size": batch_size,
            "padding_side": "left",
            "torch_threads": torch.get_num_threads(),
            "model_dir": "dequantised embedded GGUF (Charter's cache)",
        },
    }


def plot(results: dict, path: Path) -> Path:
    """Bar chart of records/min and generated tokens/s per run, next to the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    names = list(runs)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.6 * len(names) + 1.5), sharey=True)
    for ax, key, label in (
        (axes[0], "records_per_min", "records / min"),
        (axes[1], "tokens_per_s", "generated tokens / s"),
    ):
        values = [runs[n][key] for n in names]
        colors = ["#888" if n.startswith(("naive", "raw")) else "#2a6f97" for n in names]
        ax.barh(names, values, color=colors)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
        ax.set_xlabel(label)
        ax.invert_yaxis()
    cfg = results["config"]
    fig.suptitle(
        f"SL-CAI throughput, embedded SmolLM2-135M, {cfg['n']} prompts, "
        f"{cfg['max_new_tokens']} new tokens/turn (grey: baselines)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=Path, default=ROOT / "src/charter/evals/data/advbench_sample.csv")
    ap.add_argument("--constitution", default="default")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--revisions", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--naive-n", type=int, default=8, help="prompts for the (slow, linear) naive loop")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the last JSON")
    ap.add_argument(
        "--no-extra-bufts",
        action="store_true",
        help="load llama.cpp weights without its extra (AMX / repacked) buffer types, for Charter and the "
        "raw baseline alike: needed where the CPU advertises AMX but the VM does not enable it "
        "(llama.cpp then dies of SIGILL in libggml-cpu); Charter's backend decides this by itself "
        "(charter.backends.llamacpp.extra_buffers_safe), and the baseline follows the same rule",
    )
    args = ap.parse_args()
    from charter.backends.llamacpp import extra_buffers_safe

    if args.no_extra_bufts or not extra_buffers_safe():
        no_extra_bufts()
    json_path = Path(__file__).parent / "results" / "cai_throughput.json"
    if args.plot_only:
        import json

        print(f"wrote {plot(json.loads(json_path.read_text()), json_path.with_suffix('.png'))}")
        return

    from charter.core.io import load_prompts

    prompts = load_prompts(args.prompts, limit=args.n)
    constitution = load_constitution(args.constitution)
    cfg = SamplingConfig(args.max_new_tokens, 0.7, 0.95)
    results: dict = {"config": vars(args) | {"prompts": str(args.prompts)}, "runs": {}}

    # Load: first (GGUF parse + dequantise, into an empty cache) vs cached safetensors.
    gguf = embedded_gguf_path()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CHARTER_CACHE"] = cache
        with timer() as first:
            load_backend("embedded:hf")
        with timer() as cached:
            load_backend("embedded:hf")
    os.environ.pop("CHARTER_CACHE")
    model_dir = dequantised_gguf_dir(gguf)  # the user's cache, for the runs below
    results["load"] = {"first_s": first["s"], "cached_s": cached["s"], "speedup": first["s"] / cached["s"]}
    print(f"embedded model load: first {first['s']:.1f}s, cached {cached['s']:.1f}s ({first['s'] / cached['s']:.1f}x)")

    rows = []

    def add(name, r):
        r = dict(r)
        r["records_per_min"] = r.get("records", args.n) / r["seconds"] * 60
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        results["runs"][name] = r
        rows.append(
            {
                "run": name,
                "seconds": f"{r['seconds']:.1f}",
                "records/min": f"{r['records_per_min']:.2f}",
                "gen tokens/s": f"{r['tokens_per_s']:.1f}",
            }
        )
        print(f"  {name}: {r['seconds']:.1f}s", flush=True)

    if not args.skip_naive:
        print("(a) naive transformers loop ...", flush=True)
        # The naive loop is linear in prompts, so its rate from a few prompts is its rate.
        add(
            "naive transformers loop", naive_loop(prompts[: args.naive_n], constitution, model_dir, cfg, args.revisions)
        )
    engines = ["hf"] + (["llamacpp"] if llamacpp_available() else [])
    recorded, options = {}, {}
    for engine in engines:
        print(f"(b) charter on {engine} ...", flush=True)
        r, rec = charter_run(f"embedded:{engine}?batch_size={args.batch_size}", args, args.prompts)
        add(f"charter {engine}", r | {"options": rec.info.options})
        recorded[engine], options[engine] = rec.calls, rec.info.options
    if "llamacpp" in engines:
        # The H4 recipe's layout (few-shot before the whole chain) lets the prompt cache serve
        # every earlier turn; reported separately since it changes what the initial answer sees.
        print("(b') charter on llamacpp, --few-shot-scope chain ...", flush=True)
        r, _ = charter_run(f"embedded:llamacpp?batch_size={args.batch_size}", args, args.prompts, scope="chain")
        add("charter llamacpp, few-shot-scope chain", r)
    print("(c) raw engines replaying Charter's calls ...", flush=True)
    add("raw transformers generate", raw_transformers(recorded["hf"], model_dir, args.batch_size))
    if "llamacpp" in recorded:
        settings = llamacpp_settings(options["llamacpp"])
        print(f"    raw llama-cpp-python settings (matched to Charter's backend): {settings}", flush=True)
        for cache in (True, False):
            add(
                f"raw llama-cpp-python, {'prompt cache' if cache else 'no prompt cache'}",
                raw_llamacpp(recorded["llamacpp"], settings, cache),
            )

    runs = results["runs"]
    ratios = {}
    if "naive transformers loop" in runs:
        naive = runs["naive transformers loop"]["records_per_min"]
        for k in runs:
            if k.startswith("charter"):
                ratios[f"records_per_min vs naive: {k}"] = runs[k]["records_per_min"] / naive
    ratios["hf_tokens_per_s_vs_raw_transformers"] = (
        runs["charter hf"]["tokens_per_s"] / runs["raw transformers generate"]["tokens_per_s"]
    )
    if "charter llamacpp" in runs:
        # The baseline at its best: the faster of the two raw llama-cpp-python runs.
        best = max((k for k in runs if k.startswith("raw llama-cpp-python")), key=lambda k: runs[k]["tokens_per_s"])
        ratios["llamacpp_tokens_per_s_vs_raw_llamacpp"] = (
            runs["charter llamacpp"]["tokens_per_s"] / runs[best]["tokens_per_s"]
        )
        results["baseline_llamacpp"] = {
            "run": best,
            "settings": runs[best]["settings"],
            "charter_backend_options": options["llamacpp"],
        }
    results["ratios"] = ratios
    print()
    print_table(rows, ["run", "seconds", "records/min", "gen tokens/s"])
    print()
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    path = write_results("cai_throughput", results)
    print(f"wrote {path} and {plot(results, path.with_suffix('.png'))}")


if __name__ == "__main__":
    main()
