"""Evaluation throughput: responses generated and judged per minute, batched vs one at a time.

Both runs go through `charter eval run` (EvalRun) on the harmlessness suite with the same model
and judge objects, in one process: "one at a time" is --batch-size 1, "batched" is --batch-size N.
Each item = one response generated (greedy) + judged (P(harmful), both option orders).

    .venv/bin/python bench/eval_throughput.py [--model embedded:hf] [--n 32] [--serial-n 8] [--batch-size 32]
        [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _util import print_table, write_results  # noqa: E402

from charter.backends import load_backend  # noqa: E402
from charter.evals import EvalConfig, EvalRun  # noqa: E402

ADVBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "advbench" / "harmful_behaviors.csv"


def timed_run(spec: str, backend, n: int, batch_size: int, max_new_tokens: int, out: Path) -> dict:
    cfg = EvalConfig(
        model=spec,
        suite="harmlessness",
        out=str(out),
        judge=spec,
        prompts=str(ADVBENCH),
        column="goal",
        limit=n,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
    )
    run = EvalRun(cfg, backends={spec: backend})
    t0 = time.perf_counter()
    summary = run.run()
    seconds = time.perf_counter() - t0
    return {
        "batch_size": batch_size,
        "items": n,
        "seconds": round(seconds, 1),
        "items_per_min": round(n / seconds * 60, 2),
        "asr_refusal": summary["asr_refusal"]["rate"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded:hf")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--serial-n", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    backend = load_backend(
        args.model
        + ("?batch_size=%d" % args.batch_size if args.model.startswith(("embedded:hf", "hf:", "gguf:")) else "")
    )
    spec = backend.info.spec
    rows = []
    with tempfile.TemporaryDirectory() as d:
        # Warm-up (allocator, kernels) outside the timings.
        timed_run(spec, backend, 2, 2, 8, Path(d) / "warm")
        rows.append(
            timed_run(spec, backend, args.serial_n, 1, args.max_new_tokens, Path(d) / "serial")
            | {"mode": "one at a time"}
        )
        rows.append(
            timed_run(spec, backend, args.n, args.batch_size, args.max_new_tokens, Path(d) / "batched")
            | {"mode": "batched"}
        )
    ratio = rows[1]["items_per_min"] / rows[0]["items_per_min"]
    print_table(rows, ["mode", "batch_size", "items", "seconds", "items_per_min"])
    print(f"batched / one at a time: {ratio:.2f}x  (target >= 4x)")
    path = write_results(
        "eval_throughput",
        {
            "model": spec,
            "max_new_tokens": args.max_new_tokens,
            "rows": rows,
            "batched_vs_serial": round(ratio, 2),
            "target": 4.0,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
