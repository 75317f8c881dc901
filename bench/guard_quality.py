"""Guard quality on the dev sets: TPR at 1% FPR and AUROC, input side.

Two guards, trained in this run: (a) the product path — `charter guard synth` data generated from
the `default` constitution by --generator (no dev-set rows), then `charter guard train`; (b) an
in-distribution reference — the same stage-1 head trained on half of the dev sets. Both are tested
on the other half: AdvBench harmful vs XSTest safe prompts, and XSTest unsafe vs XSTest safe.
No labelled *output* dev set exists in ../shared/data, so the output side is reported on the
synthetic validation split only.

    .venv/bin/python bench/guard_quality.py [--generator embedded] [--per-category 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _util import print_table, write_results  # noqa: E402
import numpy as np  # noqa: E402

from charter.data import load_prompts  # noqa: E402
from charter.guard.classifier import calibrate_threshold, roc_auc  # noqa: E402
from charter.guard.embed import MiniLMEmbedder  # noqa: E402
from charter.guard.model import Guard, GuardTrainConfig, GuardTrainer  # noqa: E402
from charter.guard.synth import SynthConfig, Synthesizer  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def halves(items: list[str], seed: int = 0) -> tuple[list[str], list[str]]:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[: len(items) // 2], items[len(items) // 2:]


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float = 0.01) -> float:
    t = calibrate_threshold(neg, fpr)
    return float((pos > t).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", default="embedded")
    ap.add_argument("--per-category", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    advbench = [p.text for p in load_prompts(SHARED / "advbench" / "harmful_behaviors.csv", "goal")]
    xs_safe = [p.text for p in load_prompts(SHARED / "xstest" / "xstest_prompts.csv", where={"label": "safe"})]
    xs_unsafe = [p.text for p in load_prompts(SHARED / "xstest" / "xstest_prompts.csv", where={"label": "unsafe"})]
    (adv_tr, adv_te), (safe_tr, safe_te), (uns_tr, uns_te) = halves(advbench), halves(xs_safe), halves(xs_unsafe)
    embedder = MiniLMEmbedder()
    rows, out = [], {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        synth = Synthesizer(SynthConfig(constitution="default", generator=args.generator, out=str(d / "synth"),
                                        per_category=args.per_category, rounds=args.rounds, max_new_tokens=192), embedder=embedder)
        try:
            synth_summary = synth.run()
        finally:
            synth.close()
        GuardTrainer(GuardTrainConfig(data=str(d / "synth"), out=str(d / "g-synth")), embedder=embedder).train()
        ref = d / "ref"
        ref.mkdir()
        tr = [{"text": t, "label": "harmful"} for t in adv_tr + uns_tr] + [{"text": t, "label": "benign"} for t in safe_tr]
        random.Random(1).shuffle(tr)
        cut = int(len(tr) * 0.75)
        for name, part in (("train.jsonl", tr[:cut]), ("val.jsonl", tr[cut:])):
            (ref / name).write_text("".join(json.dumps(r) + "\n" for r in part))
        GuardTrainer(GuardTrainConfig(data=str(ref), out=str(d / "g-ref")), embedder=embedder).train()
        for name, gdir in (("synthetic (constitution)", d / "g-synth"), ("dev-set half (reference)", d / "g-ref")):
            guard = Guard.load(gdir, embedder=embedder)
            neg = guard.stage1_scores("input", safe_te)
            for set_name, pos_texts in (("AdvBench vs XSTest-safe", adv_te), ("XSTest-unsafe vs XSTest-safe", uns_te)):
                pos = guard.stage1_scores("input", pos_texts)
                block_t = guard.spec["sides"]["input"]["block_threshold"]
                rows.append({"guard": name, "test": set_name, "n_pos": len(pos), "n_neg": len(neg),
                             "AUROC": round(roc_auc(pos, neg), 3), "TPR@1%FPR": round(tpr_at_fpr(pos, neg), 3),
                             "TPR@calibrated": round(float((pos > block_t).mean()), 3),
                             "FPR@calibrated": round(float((neg > block_t).mean()), 3)})
            out[name] = json.loads((gdir / "guard.json").read_text())["sides"]
            for side in out[name]:
                out[name][side].pop("head")
    print_table(rows, ["guard", "test", "n_pos", "n_neg", "AUROC", "TPR@1%FPR", "TPR@calibrated", "FPR@calibrated"])
    path = write_results("guard_quality", {"generator": args.generator, "synth": synth_summary, "rows": rows,
                                            "validation": out})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
