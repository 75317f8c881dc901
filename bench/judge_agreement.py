"""How often the constitution judge prefers the human-chosen (less harmful) answer on HH-RLHF.

First human turn = prompt; the final assistant turns of `chosen` and `rejected` = the pair.
Reports agreement with a 95% Wilson interval, the agreement of each single order (the
position-bias figure: chosen shown as (A), chosen shown as (B)), the judge's mean P(A), and, as the
in-run baseline, a "prefer the shorter answer" heuristic on the same pairs.

    .venv/bin/python bench/judge_agreement.py [--judge embedded] [--n 100] [--principle harm-audit]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _util import print_table, timer, write_results  # noqa: E402

from charter.backends import load_backend  # noqa: E402
from charter.cai import Comparison, ConstitutionJudge  # noqa: E402
from charter.constitution import load_constitution  # noqa: E402
from charter.core.io import first_human_turn  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-dev" / "harmless_base_test_first400.jsonl"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)


def last_assistant(text: str) -> str:
    return text.rsplit("\n\nAssistant:", 1)[-1].strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge", default="embedded")
    ap.add_argument("--constitution", default="cai-2022")
    ap.add_argument("--principle", default="harm-audit")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()

    rows = [json.loads(l) for l in args.data.read_text().splitlines()[: args.n]]
    pairs = [(first_human_turn(r["chosen"]), last_assistant(r["chosen"]), last_assistant(r["rejected"])) for r in rows]
    pairs = [p for p in pairs if p[1] != p[2]]
    principle = load_constitution(args.constitution).principle(args.principle)
    judge = ConstitutionJudge(load_backend(args.judge))
    verdicts = []
    with timer() as t:
        for i in range(0, len(pairs), args.batch):
            chunk = pairs[i : i + args.batch]
            verdicts += judge.judge([Comparison(p, chosen, rejected, principle) for p, chosen, rejected in chunk])
            print(f"  {len(verdicts)}/{len(pairs)} pairs", end="\r", flush=True)
    n = len(verdicts)
    agree = sum(v.p_first > 0.5 for v in verdicts)
    as_a = sum(v.p_first_as_a > 0.5 for v in verdicts)
    as_b = sum(v.p_first_as_b > 0.5 for v in verdicts)
    mean_p_a = sum(0.5 * (v.p_first_as_a + (1 - v.p_first_as_b)) for v in verdicts) / n
    shorter = sum(len(c) < len(r) for _, c, r in pairs)
    res = {
        "judge": judge.backend.info.to_dict(),
        "principle": principle.id,
        "pairs": n,
        "seconds": t["s"],
        "agreement": agree / n,
        "agreement_ci95": wilson(agree, n),
        "agreement_chosen_as_A": as_a / n,
        "agreement_chosen_as_B": as_b / n,
        "mean_P_A": mean_p_a,
        "baseline_prefer_shorter": shorter / n,
        "baseline_prefer_shorter_ci95": wilson(shorter, n),
        "agreement_vs_shorter_baseline": (agree / n) / max(shorter / n, 1e-9),
    }
    print()
    print_table(
        [
            {
                "measure": "judge agreement (both orders)",
                "value": f"{agree / n:.3f}",
                "95% CI": "%.3f-%.3f" % wilson(agree, n),
            },
            {"measure": "chosen shown as (A)", "value": f"{as_a / n:.3f}", "95% CI": "%.3f-%.3f" % wilson(as_a, n)},
            {"measure": "chosen shown as (B)", "value": f"{as_b / n:.3f}", "95% CI": "%.3f-%.3f" % wilson(as_b, n)},
            {"measure": "mean P(A) (0.5 = no position bias)", "value": f"{mean_p_a:.3f}", "95% CI": ""},
            {
                "measure": "baseline: prefer the shorter answer",
                "value": f"{shorter / n:.3f}",
                "95% CI": "%.3f-%.3f" % wilson(shorter, n),
            },
        ],
        ["measure", "value", "95% CI"],
    )
    print(f"{n} pairs in {t['s']:.0f}s; wrote {write_results('judge_agreement', res)}")


if __name__ == "__main__":
    main()
