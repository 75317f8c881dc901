"""Records per second through `charter data filter`, against raw MiniLM embedding of the same texts
in the same run (the filter's floor: everything else is reading, deobfuscation, the head, writing).

    .venv/bin/python bench/filter_throughput.py [--n 2000] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _util import print_table, write_results  # noqa: E402

from charter.core.io import first_human_turn, load_prompts  # noqa: E402
from charter.guard.filter import CorpusFilter, FilterConfig  # noqa: E402
from charter.guard.model import Guard  # noqa: E402
from charter.guard.training import GuardTrainConfig, GuardTrainer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    hh = [
        json.loads(x) for x in (SHARED / "hh-rlhf-dev" / "harmless_base_test_first400.jsonl").read_text().splitlines()
    ]
    texts = [first_human_turn(r["chosen"]) for r in hh] + [r["chosen"][-400:] for r in hh]
    texts = (texts * (args.n // len(texts) + 1))[: args.n]
    adv = [p.text for p in load_prompts(SHARED / "advbench" / "harmful_behaviors.csv", "goal")]
    safe = [p.text for p in load_prompts(SHARED / "xstest" / "xstest_prompts.csv", where={"label": "safe"})]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "data").mkdir()
        rows = [{"text": t, "label": "harmful"} for t in adv] + [{"text": t, "label": "benign"} for t in safe]
        for name, part in (("train.jsonl", rows[0::2]), ("val.jsonl", rows[1::2])):
            (d / "data" / name).write_text("".join(json.dumps(r) + "\n" for r in part))
        GuardTrainer(GuardTrainConfig(data=str(d / "data"), out=str(d / "g"))).train()
        corpus = d / "corpus.jsonl"
        corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
        guard = Guard.load(d / "g")
        guard.embedder.embed(texts[:64])  # warm up
        t0 = time.perf_counter()
        for i in range(0, len(texts), args.batch_size):
            guard.embedder.embed(texts[i : i + args.batch_size])
        raw = time.perf_counter() - t0
        t0 = time.perf_counter()
        lineage = CorpusFilter(
            FilterConfig(guard=str(d / "g"), input=str(corpus), out=str(d / "f"), batch_size=args.batch_size),
            guard=guard,
        ).run()
        filt = time.perf_counter() - t0
    rows = [
        {"run": "raw MiniLM embedding", "seconds": round(raw, 2), "records_per_s": round(len(texts) / raw, 1)},
        {"run": "charter data filter", "seconds": round(filt, 2), "records_per_s": round(len(texts) / filt, 1)},
    ]
    print_table(rows, ["run", "seconds", "records_per_s"])
    print(
        f"filter / raw embedding throughput: {raw / filt:.2f}  (removed {lineage['removed']} of {lineage['records']})"
    )
    write_results(
        "filter_throughput",
        {
            "records": len(texts),
            "batch_size": args.batch_size,
            "rows": rows,
            "filter_vs_raw": round(raw / filt, 3),
            "removed": lineage["removed"],
        },
    )


if __name__ == "__main__":
    main()
