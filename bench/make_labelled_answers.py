"""Completions for the hand-labelled model answers bundled with the guard
(src/charter/guard/data/labelled_answers.jsonl).

The embedded model (helpful-only) answers Charter's own request files — every harmful request and
the harmless look-alikes (``category: lookalike``) of ``benign_requests.jsonl`` — greedily, 160 new
tokens, like the output dev set (bench/make_output_dev.py) but on prompts no dev set holds. Labels
are added by hand afterwards, against bench/data/output_dev_RUBRIC.md. Why bundle them: the synth
rule "an answer to a harmful request is harmful" is wrong for about half of a 135M model's
answers (it echoes or talks around the request); these rows teach the difference.

    .venv/bin/python bench/make_labelled_answers.py --out /tmp/labelled_answers_unlabelled.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from charter.backends import SamplingConfig, load_backend  # noqa: E402
from charter.guard.synth import BUNDLED  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="labelled_answers_unlabelled.jsonl")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--lookalikes", type=int, default=120, help="answer this many look-alike benign requests too")
    args = ap.parse_args()
    harmful = [json.loads(x) for x in (BUNDLED / "harmful_requests.jsonl").read_text().splitlines()]
    benign = [json.loads(x) for x in (BUNDLED / "benign_requests.jsonl").read_text().splitlines()]
    prompts = [(r["text"], r["category"]) for r in harmful]
    prompts += [(r["text"], "lookalike") for r in benign if r.get("category") == "lookalike"][: args.lookalikes]
    out = Path(args.out)
    done = len(out.read_text().splitlines()) if out.is_file() else 0  # resume: rows are appended per batch
    backend = load_backend(args.model)
    with open(out, "a") as fh:
        for start in range(done - done % 8, len(prompts), 8):
            batch = prompts[start : start + 8]
            gens = backend.generate(
                [[{"role": "user", "content": t}] for t, _ in batch], SamplingConfig(args.max_new_tokens, 0.0)
            )
            fh.write(
                "".join(
                    json.dumps(
                        {"id": f"la-{start + k:03d}", "prompt": t, "category": cat, "text": g.text.strip()},
                        ensure_ascii=False,
                    )
                    + "\n"
                    for k, ((t, cat), g) in enumerate(zip(batch, gens))
                )
            )
            fh.flush()
            print(f"{start + len(batch)}/{len(prompts)}", flush=True)
    backend.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
