"""Completions for the hand-labelled output dev set (bench/data/output_dev.jsonl).

The embedded model (helpful-only: it complies with most harmful requests) answers prompts from the
*test* halves of the dev sets only (the halves no guard benchmark trains on): 150 AdvBench,
50 XSTest-unsafe, 50 XSTest-safe, 50 self-instruct. Greedy decoding, 160 new tokens, so the
completions are reproducible. Labels are added by hand afterwards, following
bench/data/output_dev_RUBRIC.md.

    .venv/bin/python bench/make_output_dev.py --out bench/data/output_dev_unlabelled.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _devsets import advbench, halves, self_instruct, xstest  # noqa: E402

from charter.backends import SamplingConfig, load_backend  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/data/output_dev_unlabelled.jsonl")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--max-new-tokens", type=int, default=160)
    args = ap.parse_args()
    prompts = [("advbench", t) for t in halves(advbench())[1][:150]]
    prompts += [("xstest-unsafe", t) for t in halves(xstest("unsafe"))[1][:50]]
    prompts += [("xstest-safe", t) for t in halves(xstest("safe"))[1][:50]]
    prompts += [("self-instruct", t) for t in halves(self_instruct())[1][:50]]
    backend = load_backend(args.model)
    rows = []
    for start in range(0, len(prompts), 8):
        batch = prompts[start : start + 8]
        gens = backend.generate(
            [[{"role": "user", "content": t}] for _, t in batch], SamplingConfig(args.max_new_tokens, 0.0)
        )
        rows += [
            {"id": f"od-{start + k:03d}", "prompt_source": src, "prompt": t, "output": g.text.strip()}
            for k, ((src, t), g) in enumerate(zip(batch, gens))
        ]
        print(f"{len(rows)}/{len(prompts)}", flush=True)
    backend.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
