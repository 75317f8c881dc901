"""How good are the measuring instruments of `charter eval`?

1. The refusal detector against hand labels: 54 final assistant turns of HH-RLHF harmless-base
   pairs whose last human turn is a clear request (bench/data/hh_refusal_labels.jsonl: row, side,
   XSTest-style label, labelled by a Charter developer reading the request and the response).
   In-run baseline: XSTest's original string matcher (response openings only).
2. The constitution harm judge on HH-RLHF pairs: how often P(harmful | rejected exchange) >
   P(harmful | chosen exchange) (crowdworkers judged `chosen` less harmful), with the
   single-order figures as the position-bias check. In-run baseline: "the refusing answer is the
   less harmful one" from the refusal detector (ties count half).

    .venv/bin/python bench/eval_instruments.py [--judge embedded] [--pairs 60]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _util import print_table, write_results  # noqa: E402

from charter.backends import load_backend  # noqa: E402
from charter.constitution import load_constitution  # noqa: E402
from charter.core.io import first_human_turn  # noqa: E402
from charter.core.refusal import FULL_COMPLIANCE, FULL_REFUSAL, LABELS, XSTEST_OPENINGS, RefusalDetector  # noqa: E402
from charter.core.stats import rate  # noqa: E402
from charter.evals.judges import HarmJudge  # noqa: E402

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-dev" / "harmless_base_test_first400.jsonl"
LABELS_FILE = Path(__file__).parent / "data" / "hh_refusal_labels.jsonl"


def xstest_strmatch(response: str) -> str:
    text = response.lower().strip()
    return FULL_REFUSAL if text.startswith(XSTEST_OPENINGS) else FULL_COMPLIANCE


def last_turns(dialogue: str) -> tuple[str, str]:
    i = dialogue.rfind("\n\nAssistant:")
    j = dialogue.rfind("\n\nHuman:", 0, i)
    return dialogue[j + 9 : i].strip(), dialogue[i + 12 :].strip().replace("\u2019", "'")


def refusal_accuracy(rows: list[dict]) -> dict:
    labelled = [json.loads(line) for line in LABELS_FILE.read_text().splitlines() if line.strip()]
    detector = RefusalDetector()
    out = {}
    for name, classify in (
        ("charter RefusalDetector", detector.classify),
        ("XSTest string match (baseline)", xstest_strmatch),
    ):
        pred = [classify(last_turns(rows[x["row"]][x["side"]])[1]) for x in labelled]
        gold = [x["label"] for x in labelled]
        exact = sum(p == g for p, g in zip(pred, gold))
        is_ref = [g != FULL_COMPLIANCE for g in gold]
        said_ref = [p != FULL_COMPLIANCE for p in pred]
        tp = sum(a and b for a, b in zip(is_ref, said_ref))
        out[name] = {
            "n": len(gold),
            "accuracy_3way": rate(exact, len(gold)),
            "accuracy_binary": rate(sum(a == b for a, b in zip(is_ref, said_ref)), len(gold)),
            "refusal_precision": rate(tp, sum(said_ref)),
            "refusal_recall": rate(tp, sum(is_ref)),
            "confusion": {
                g: {p: sum(1 for a, b in zip(gold, pred) if a == g and b == p) for p in LABELS} for g in LABELS
            },
        }
    return out


def judge_accuracy(rows: list[dict], judge_spec: str, n_pairs: int) -> dict:
    backend = load_backend(judge_spec)
    judge = HarmJudge(backend, load_constitution("default"))
    detector = RefusalDetector()
    pairs = rows[:n_pairs]
    exchanges = []
    for r in pairs:
        for side in ("chosen", "rejected"):
            human, answer = last_turns(r[side])
            exchanges.append((first_human_turn(r[side]) if human == "" else human, answer))
    t0 = time.perf_counter()
    verdicts = judge.judge(exchanges)
    seconds = time.perf_counter() - t0
    backend.close()
    agree = agree_a = agree_b = base = 0.0
    for k in range(len(pairs)):
        c, r = verdicts[2 * k], verdicts[2 * k + 1]
        agree += 1.0 if r.p_harmful > c.p_harmful else 0.5 if r.p_harmful == c.p_harmful else 0.0
        agree_a += 1.0 if r.p_harmful_as_a > c.p_harmful_as_a else 0.0
        agree_b += 1.0 if r.p_harmful_as_b > c.p_harmful_as_b else 0.0
        rc = detector.is_refusal(exchanges[2 * k][1])
        rr = detector.is_refusal(exchanges[2 * k + 1][1])
        base += 1.0 if rc and not rr else 0.0 if rr and not rc else 0.5
    n = len(pairs)
    return {
        "judge": judge_spec,
        "pairs": n,
        "seconds": round(seconds, 1),
        "agreement_both_orders": rate(agree, n),
        "agreement_harmful_as_A_only": rate(agree_a, n),
        "agreement_harmful_as_B_only": rate(agree_b, n),
        "mean_p_harmful": sum(v.p_harmful for v in verdicts) / len(verdicts),
        "baseline_refusal_detector_prefers_refusal": rate(base, n),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judge", default="embedded")
    ap.add_argument("--pairs", type=int, default=60)
    args = ap.parse_args()
    rows = [json.loads(line) for line in HH.read_text().splitlines() if line.strip()]
    refusal = refusal_accuracy(rows)
    table = [
        {
            "instrument": k,
            "n": v["n"],
            "3-way acc": f"{v['accuracy_3way']['rate']:.3f}",
            "binary acc": f"{v['accuracy_binary']['rate']:.3f}",
            "refusal P": f"{v['refusal_precision']['rate']:.3f}" if v["refusal_precision"]["rate"] is not None else "-",
            "refusal R": f"{v['refusal_recall']['rate']:.3f}",
        }
        for k, v in refusal.items()
    ]
    print_table(table, ["instrument", "n", "3-way acc", "binary acc", "refusal P", "refusal R"])
    judge = judge_accuracy(rows, args.judge, args.pairs)
    print()
    print_table(
        [
            {
                "measure": "judge: P(harmful) higher for the rejected answer",
                "value": f"{judge['agreement_both_orders']['rate']:.3f}",
                "ci95": "{:.3f}-{:.3f}".format(*judge["agreement_both_orders"]["ci95"]),
            },
            {
                "measure": "  same, 'harmful' as option (A) only",
                "value": f"{judge['agreement_harmful_as_A_only']['rate']:.3f}",
                "ci95": "",
            },
            {
                "measure": "  same, 'harmful' as option (B) only",
                "value": f"{judge['agreement_harmful_as_B_only']['rate']:.3f}",
                "ci95": "",
            },
            {
                "measure": "baseline: the refusing answer is less harmful",
                "value": f"{judge['baseline_refusal_detector_prefers_refusal']['rate']:.3f}",
                "ci95": "{:.3f}-{:.3f}".format(*judge["baseline_refusal_detector_prefers_refusal"]["ci95"]),
            },
        ],
        ["measure", "value", "ci95"],
    )
    path = write_results(
        "eval_instruments",
        {
            "refusal_detector": refusal,
            "harm_judge": judge,
            "labels_file": str(LABELS_FILE.relative_to(Path(__file__).parents[1])),
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
