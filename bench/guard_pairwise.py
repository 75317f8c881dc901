"""Pairwise ablations of the fine-tuned guard's output side: what moves HH-RLHF pairwise accuracy?

The same data as bench/guard_quality.py (its cached synth data, the form rule, the bundled
hand-labelled replies); to be quick, only the output-side heads are trained (the output-side rows
train the ``output`` and ``exchange`` heads, 2 epochs), so absolute figures sit near but not on
guard_quality's. Variants (all in one run, same seed):

- ``base``     — the HH-RLHF train-half pairs as `charter guard train` uses them (pair weight 0.5);
- ``hh-x3``    — those pairs three times over at pair weight 1.0 (more of the target's own signal);
- ``reply``    — plus pairs made from the labelled replies themselves: for each request with a benign
  and a harmful reply in the training split, benign ≻ harmful (147 pairs).
- ``written``  — plus the graded reply pairs written for Charter (bench/data/written_pairs.jsonl: two
  conversational replies to one HH-RLHF train-half conversation or AdvBench/XSTest-unsafe train-half
  request, one worse than the other: refuse vs comply, redirect vs engage, mild vs worse, caution vs
  endorse; rubric in bench/data/written_pairs_RUBRIC.md).
- ``written-reply`` — ``written`` and ``reply`` together.

Test: output AUROC on bench/data/output_dev.jsonl; pairwise accuracy on the HH-RLHF test half (200
pairs: a 95% interval of about ±0.07), reply alone (output head) and request + reply (exchange head).

    .venv/bin/python bench/guard_pairwise.py [--variants base,hh-x3,reply] [--epochs 2]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import guard_quality  # noqa: E402
import numpy as np  # noqa: E402
from _devsets import available, written_pairs  # noqa: E402
from _util import print_table, write_results  # noqa: E402

from charter.guard.classifier import roc_auc  # noqa: E402
from charter.guard.encoder import EncoderClassifier, EncoderTrainConfig, EncoderTrainer, PreferencePair  # noqa: E402
from charter.guard.metrics import pairwise_accuracy  # noqa: E402
from charter.guard.training import _examples, load_guard_data, load_pairs  # noqa: E402

VARIANTS = ("base", "hh-x3", "reply", "written", "written-reply")


def reply_pairs(rows: list[dict], seed: int = 0) -> list[PreferencePair]:
    """benign ≻ harmful for every request that has both among the labelled output rows."""
    by: dict[str, tuple[list[str], list[str]]] = {}
    for r in rows:
        if r.get("prompt"):
            by.setdefault(r["prompt"], ([], []))[r["y"]].append(r["text"])
    rng = random.Random(seed)
    return [PreferencePair(p, rng.choice(b), rng.choice(h)) for p, (b, h) in sorted(by.items()) if b and h]


def run_variant(name: str, data: Path, sets: dict, epochs: int) -> dict:
    train = load_guard_data(data / "train.jsonl")
    examples = _examples({"input": [], "output": train["output"]})
    hh = [PreferencePair(p["prompt"], p["chosen"], p["rejected"]) for p in load_pairs(data / "pairs_train.jsonl")]
    pairs, weight = list(hh), 0.5
    if name == "hh-x3":
        pairs, weight = hh * 3, 1.0
    if name in ("reply", "written-reply"):
        pairs += reply_pairs(train["output"])
    if name in ("written", "written-reply"):
        pairs += [PreferencePair(p["prompt"], p["chosen"], p["rejected"]) for p in written_pairs()]
    t0 = time.perf_counter()
    out = Path(tempfile.mkdtemp()) / name
    EncoderTrainer(EncoderTrainConfig(epochs=epochs, pair_weight=weight)).train(
        examples, pairs, out=out, progress=guard_quality._progress(name)
    )
    clf = EncoderClassifier(out, runtime="torch")
    rows = sets["outputs"]
    y = np.array([1 if r["label"] == "harmful" else 0 for r in rows])
    s = clf.logits([r["output"] for r in rows])[:, 1]
    p = sets["pairs"]
    c_out, r_out = clf.logits([x["chosen"] for x in p])[:, 1], clf.logits([x["rejected"] for x in p])[:, 1]
    prompts = [x["prompt"] for x in p]
    c_ex, r_ex = (
        clf.logits(prompts, [x["chosen"] for x in p])[:, 2],
        clf.logits(prompts, [x["rejected"] for x in p])[:, 2],
    )
    return {
        "variant": name,
        "pairs": len(pairs),
        "pair_weight": weight,
        "train_s": round(time.perf_counter() - t0),
        "AUROC (output head)": round(roc_auc(s[y == 1], s[y == 0]), 3),
        "pairwise (output head)": round(pairwise_accuracy(c_out, r_out), 3),
        "pairwise (exchange head)": round(pairwise_accuracy(c_ex, r_ex), 3),
        "n_pairs": len(p),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="base,written")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    if not available():
        sys.exit("needs ../shared/data (the dev sets)")
    names = [v for v in args.variants.split(",") if v]
    if unknown := [v for v in names if v not in VARIANTS]:
        sys.exit(f"unknown variant {unknown[0]!r} (known: {', '.join(VARIANTS)})")
    synth_args = argparse.Namespace(generator="embedded", per_category=4, max_answers=700, max_new_tokens=128)
    with tempfile.TemporaryDirectory() as d:
        cached, _ = guard_quality.build_data(synth_args, Path(d))
        data, prep = guard_quality.prepared(cached, Path(d), labelled=True, answer_rule="form")
        sets = guard_quality.test_sets()
        rows = [run_variant(v, data, sets, args.epochs) for v in names]
    print_table(
        rows,
        [
            "variant",
            "pairs",
            "pair_weight",
            "AUROC (output head)",
            "pairwise (output head)",
            "pairwise (exchange head)",
            "n_pairs",
            "train_s",
        ],
    )
    path = write_results(
        "guard_pairwise",
        {
            "settings": vars(args)
            | {"heads_trained": "output, exchange (output-side rows only)", "threads": 2, "runtime": "torch fp32"},
            "synth": prep,
            "rows": rows,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
