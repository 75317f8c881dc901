"""Guard cost on the request path, measured against generating a 256-token response with the
embedded model in the same run.

Stage-1 latency per text (one request at a time: p50 and p99), for each encoder runtime:
- frozen MiniLM + logistic head (PyTorch fp32, the first release's stage 1),
- the fine-tuned encoder in PyTorch fp32,
- the fine-tuned encoder in ONNX Runtime, fp32 (the default) and dynamic int8 weights.
Then concurrent checks (8 client threads) with and without micro-batching, and the cascade's
expected cost: stage 1 + escalation rate x stage 2 (the trained exchange head; the LM judge on
the embedded model for reference), on benign traffic and on a 50/50 harmful mix.

Baseline: `generate` of 256 new tokens, greedy, batch 1, on the embedded model (llama.cpp, all
cores), median of 3. Targets: stage-1 p50 <= 5 ms; cascade <= 5% of the generation.

    .venv/bin/python bench/guard_overhead.py [--guard DIR] [--n 200]

Without --guard it uses the fine-tuned guard bench/guard_quality.py left in ~/.cache/charter-bench,
else trains a one-epoch guard on the even rows of the dev sets here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from _devsets import advbench, available, halves, self_instruct, xstest  # noqa: E402
from _util import print_table, write_results  # noqa: E402

from charter.backends import SamplingConfig, load_backend  # noqa: E402
from charter.constitution import load_constitution  # noqa: E402
from charter.guard.exchange import ExchangeClassifier  # noqa: E402
from charter.guard.model import Guard  # noqa: E402
from charter.guard.training import GuardTrainConfig, GuardTrainer

CACHE = Path(os.environ.get("CHARTER_BENCH_CACHE", Path.home() / ".cache" / "charter-bench"))


def _quick_guard(d: Path) -> Path:
    rows = [{"text": t, "label": "harmful"} for t in halves(advbench())[0]]
    rows += [{"text": t, "label": "benign"} for t in halves(xstest("safe"))[0] + halves(self_instruct())[0]]
    (d / "data").mkdir()
    for name, part in (("train.jsonl", rows[0::2]), ("val.jsonl", rows[1::2])):
        (d / "data" / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    GuardTrainer(GuardTrainConfig(data=str(d / "data"), out=str(d / "g"), epochs=1)).train()
    return d / "g"


def _latencies(check, texts: list[str]) -> list[float]:
    out = []
    for t in texts:
        t0 = time.perf_counter()
        check(t)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _concurrent(check, texts: list[str], threads: int = 8) -> float:
    """Texts per second with `threads` clients each checking its share one text at a time."""
    parts = [texts[i::threads] for i in range(threads)]
    workers = [threading.Thread(target=lambda p=p: [check(t) for t in p]) for p in parts]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return len(texts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--guard", default=None)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--model", default="embedded")
    args = ap.parse_args()
    if not available():
        sys.exit("needs ../shared/data (the dev sets)")
    harmful = halves(advbench())[1][: args.n // 2]
    benign = (halves(xstest("safe"))[1] + halves(self_instruct())[1])[: args.n // 2]
    mix = harmful + benign
    with tempfile.TemporaryDirectory() as d:
        gdir = (
            Path(args.guard)
            if args.guard
            else (
                CACHE / "guard-finetuned"
                if (CACHE / "guard-finetuned" / "guard.json").is_file()
                else _quick_guard(Path(d))
            )
        )
        print(f"guard: {gdir}")
        tuned = Guard.load(gdir)
        tuned_torch = Guard.load(gdir, runtime="torch")
        tuned_int8 = Guard.load(gdir, runtime="onnx-int8")
        frozen_dir = Path(d) / "frozen"
        if not (frozen_dir / "guard.json").exists():
            data = json.loads((gdir / "guard.json").read_text()).get("data")
            rows = [{"text": t, "label": "harmful"} for t in halves(advbench())[0]] + [
                {"text": t, "label": "benign"} for t in halves(xstest("safe"))[0] + halves(self_instruct())[0]
            ]
            fd = Path(d) / "fdata"
            fd.mkdir()
            for name, part in (("train.jsonl", rows[0::2]), ("val.jsonl", rows[1::2])):
                (fd / name).write_text("".join(json.dumps(r) + "\n" for r in part))
            GuardTrainer(
                GuardTrainConfig(
                    data=str(data if data and Path(data).is_dir() else fd), out=str(frozen_dir), stage1="frozen"
                )
            ).train()
        frozen = Guard.load(frozen_dir)
        backend = load_backend(args.model)
        gen_times = []
        for i in range(3):
            t0 = time.perf_counter()
            g = backend.generate([[{"role": "user", "content": benign[i]}]], SamplingConfig(256, 0.0))[0]
            gen_times.append((time.perf_counter() - t0, g.completion_tokens))
        # Greedy answers may stop before 256 tokens: scale each run to 256 (prefill included).
        gen_ms = statistics.median(t / max(n, 1) * 256 for t, n in gen_times) * 1000
        rows = [
            {
                "what": "generate 256 tokens, greedy, batch 1 (baseline)",
                "p50_ms": round(gen_ms, 1),
                "p99_ms": "",
                "fraction": 1.0,
            }
        ]
        per_runtime = {}
        for name, guard in (
            ("frozen MiniLM + head (torch fp32)", frozen),
            ("fine-tuned (torch fp32)", tuned_torch),
            ("fine-tuned (ONNX int8)", tuned_int8),
            ("fine-tuned (ONNX fp32) [default]", tuned),
        ):
            guard.check_input("warm up")
            lat = _latencies(lambda t, g=guard: g._stage1("input", [t], [None]), mix)
            p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
            per_runtime[name] = {"p50_ms": p50, "p99_ms": p99}
            rows.append(
                {
                    "what": f"stage 1 per text: {name}",
                    "p50_ms": round(p50, 2),
                    "p99_ms": round(p99, 2),
                    "fraction": round(p50 / gen_ms, 5),
                }
            )
        # Concurrency: 8 clients, plain vs micro-batched (the default runtime).
        batched = Guard.load(gdir, batching=True)
        batched.check_input("warm up")
        texts = (mix * 2)[:400]
        plain_tps = _concurrent(lambda t: tuned.check_input(t), texts)
        batched_tps = _concurrent(lambda t: batched.check_input(t), texts)
        # Cascade: escalation rates measured on each traffic mix.
        dec_h = [tuned.check_input(t) for t in harmful]
        dec_b = [tuned.check_input(t) for t in benign]
        s1 = statistics.mean(sum(v for k, v in x.latency_ms.items() if k == "stage1") for x in dec_h + dec_b)
        s2_list = [x.latency_ms["stage2"] for x in dec_h + dec_b if "stage2" in x.latency_ms]
        s2 = (
            statistics.median(s2_list)
            if s2_list
            else float(np.median(_latencies(lambda t: tuned.stage2_scores("input", [t]), mix[:50])))
        )
        esc_b = sum(x.escalate for x in dec_b) / len(dec_b)
        esc_mix = sum(x.escalate for x in dec_h + dec_b) / len(dec_h + dec_b)
        lm = ExchangeClassifier(backend, load_constitution("default"))
        lm_ms = statistics.median(_latencies(lambda t: lm(t), mix[:8]))
        backend.close()
        for label, esc in (("benign traffic", esc_b), ("50/50 harmful mix", esc_mix)):
            cost = s1 + esc * s2
            rows.append(
                {
                    "what": f"cascade, {label} (escalation {esc:.3f}), trained stage 2",
                    "p50_ms": round(cost, 2),
                    "p99_ms": "",
                    "fraction": round(cost / gen_ms, 5),
                }
            )
            cost_lm = s1 + esc * lm_ms
            rows.append(
                {
                    "what": f"cascade, {label}, LM judge as stage 2 (reference)",
                    "p50_ms": round(cost_lm, 1),
                    "p99_ms": "",
                    "fraction": round(cost_lm / gen_ms, 4),
                }
            )
    print_table(rows, ["what", "p50_ms", "p99_ms", "fraction"])
    print(
        f"8 concurrent clients, ONNX fp32: {plain_tps:.0f} checks/s one by one, "
        f"{batched_tps:.0f} checks/s micro-batched "
        f"({batched_tps / plain_tps:.2f}x; {batched.finetuned.logits.batches} batches "
        f"for {batched.finetuned.logits.jobs} calls)"
    )
    print("targets: stage-1 p50 <= 5 ms; cascade <= 0.05 of the generation")
    path = write_results(
        "guard_overhead",
        {
            "settings": {
                "model": args.model,
                "texts": len(mix),
                "baseline": (
                    "llama.cpp via load_backend('embedded'), greedy, up to 256 new tokens, batch 1, "
                    "time scaled to 256 tokens, median of 3"
                ),
                "onnx": (
                    "onnxruntime CPUExecutionProvider, default threads (all cores), "
                    "fp32 (default) and dynamic int8 weights"
                ),
                "torch": (
                    f"torch {__import__('torch').__version__}, "
                    f"{__import__('torch').get_num_threads()} threads, fp32, inference_mode"
                ),
                "concurrency": "8 client threads, 400 checks",
            },
            "generated_tokens": [n for _, n in gen_times],
            "rows": rows,
            "stage1_by_runtime": per_runtime,
            "concurrent_checks_per_s": {"one_by_one": plain_tps, "micro_batched": batched_tps},
            "escalation_rate": {"benign": esc_b, "mix": esc_mix},
            "stage2_ms": s2,
            "lm_judge_ms": lm_ms,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
