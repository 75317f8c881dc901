"""Guard cost per request as a fraction of generating a 256-token response with the embedded model,
measured in the same run.

Stage 1 (MiniLM embedding + logistic head, text and deobfuscated text) per request; stage 2 (the
exchange classifier on the embedded model, both option orders) per escalated request; the cascade's
expected cost = stage 1 + escalation rate x stage 2, with the escalation rate measured on the dev
prompts: on the 50/50 mix of AdvBench and XSTest-safe, and on the benign half alone (production
traffic is mostly benign; Classifiers++ quotes its overhead on such traffic). Baseline: `generate` of 256 new tokens (greedy) on the embedded model.
Targets: stage 1 <= 1%, whole cascade <= 5%.

    .venv/bin/python bench/guard_overhead.py [--guard DIR] [--n 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _util import print_table, write_results  # noqa: E402

from charter.backends import SamplingConfig, load_backend  # noqa: E402
from charter.constitution import load_constitution  # noqa: E402
from charter.data import load_prompts  # noqa: E402
from charter.guard.exchange import ExchangeClassifier  # noqa: E402
from charter.guard.model import Guard, GuardTrainConfig, GuardTrainer  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--guard", default=None, help="a trained guard (default: train one on half the dev sets here)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--model", default="embedded")
    args = ap.parse_args()
    adv = [p.text for p in load_prompts(SHARED / "advbench" / "harmful_behaviors.csv", "goal")]
    safe = [p.text for p in load_prompts(SHARED / "xstest" / "xstest_prompts.csv", where={"label": "safe"})]
    test = adv[1::2][: args.n // 2] + safe[1::2][: args.n // 2]
    with tempfile.TemporaryDirectory() as d:
        gdir = args.guard
        if gdir is None:
            gdir = Path(d) / "g"
            (Path(d) / "data").mkdir()
            rows = [{"text": t, "label": "harmful"} for t in adv[0::2]] + [{"text": t, "label": "benign"} for t in safe[0::2]]
            for name, part in (("train.jsonl", rows[0::2]), ("val.jsonl", rows[1::2])):
                (Path(d) / "data" / name).write_text("".join(json.dumps(r) + "\n" for r in part))
            GuardTrainer(GuardTrainConfig(data=str(Path(d) / "data"), out=str(gdir))).train()
        backend = load_backend(args.model)
        guard = Guard.load(gdir)
        guard.check_input("warm up")
        # Baseline: one 256-token response (median of 3).
        gen_times = []
        for i in range(3):
            t0 = time.perf_counter()
            g = backend.generate([[{"role": "user", "content": test[i]}]], SamplingConfig(256, 0.0))[0]
            gen_times.append((time.perf_counter() - t0, g.completion_tokens))
        gen_s = statistics.median(t for t, _ in gen_times)
        decisions = [guard.check_input(t) for t in test]
        stage1_s = statistics.mean(d.latency_ms["stage1"] for d in decisions) / 1000
        escalation = sum(d.escalate for d in decisions) / len(decisions)
        benign = decisions[len(test) // 2:]  # the XSTest-safe half: what most production traffic looks like
        escalation_benign = sum(d.escalate for d in benign) / len(benign)
        exchange = ExchangeClassifier(backend, load_constitution("default"))
        ex_times = []
        for t in test[:8]:
            t0 = time.perf_counter()
            exchange(t)
            ex_times.append(time.perf_counter() - t0)
        stage2_s = statistics.median(ex_times)
        cascade_s = stage1_s + escalation * stage2_s
        cascade_benign_s = stage1_s + escalation_benign * stage2_s
        rows = [
            {"what": "generate 256 tokens (baseline)", "seconds": round(gen_s, 3), "fraction": 1.0},
            {"what": "stage 1 per request", "seconds": round(stage1_s, 4), "fraction": round(stage1_s / gen_s, 4)},
            {"what": "stage 2 per escalated request", "seconds": round(stage2_s, 3), "fraction": round(stage2_s / gen_s, 4)},
            {"what": f"cascade, 50/50 harmful mix (escalation {escalation:.3f})", "seconds": round(cascade_s, 4), "fraction": round(cascade_s / gen_s, 4)},
            {"what": f"cascade, benign traffic (escalation {escalation_benign:.3f})", "seconds": round(cascade_benign_s, 4), "fraction": round(cascade_benign_s / gen_s, 4)},
        ]
        backend.close()
    print_table(rows, ["what", "seconds", "fraction"])
    print("targets: stage 1 <= 0.01, cascade <= 0.05")
    path = write_results("guard_overhead", {"model": args.model, "requests": len(test), "escalation_rate": escalation, "escalation_rate_benign": escalation_benign,
                                             "generated_tokens": [n for _, n in gen_times], "rows": rows})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
