"""``charter guard eval``: how well and how cheaply the cascade separates harmful from benign.

TPR (harmful blocked), FPR (benign blocked), AUROC of the stage-1 score, escalation rate, and the
cost per request (mean and p99 latency of the whole cascade), per side; a ROC curve PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from charter.data import iter_jsonl, load_prompts, safe_label_filter
from charter.errors import InputError
from charter.evals.stats import rate
from charter.guard.classifier import roc_auc
from charter.guard.model import Guard


def _figures(decisions_pos: list, decisions_neg: list) -> dict:
    pos = np.array([d.stage1_score for d in decisions_pos])
    neg = np.array([d.stage1_score for d in decisions_neg])
    every = decisions_pos + decisions_neg
    cost = np.array([sum(d.latency_ms.values()) for d in every])
    return {
        "n_harmful": len(pos), "n_benign": len(neg),
        "tpr": rate(sum(d.block for d in decisions_pos), len(pos)),
        "fpr": rate(sum(d.block for d in decisions_neg), len(neg)),
        "auroc_stage1": roc_auc(pos, neg),
        "escalation_rate": rate(sum(d.escalate for d in every), len(every)),
        "cost_ms": {"mean": float(cost.mean()), "p99": float(np.percentile(cost, 99))},
        "_scores": (pos.tolist(), neg.tolist()),
    }


def evaluate_guard(guard: Guard, *, harmful: str, benign: str, outputs: str | None = None, out: str | Path,
                   column: str | None = None, limit: int | None = None) -> dict:
    hp = [p.text for p in load_prompts(harmful, column, limit)]
    bp = [p.text for p in load_prompts(benign, column, limit, where=safe_label_filter(benign))]
    result = {"guard_format": guard.spec.get("format"), "harmful": harmful, "benign": benign,
              "input": _figures([guard.check_input(t) for t in hp], [guard.check_input(t) for t in bp])}
    if outputs:
        rows = _load_outputs(Path(outputs))
        pos = [guard.check_output(r["output"], r.get("prompt")) for r in rows if r["label"] == 1]
        neg = [guard.check_output(r["output"], r.get("prompt")) for r in rows if r["label"] == 0]
        if not pos or not neg:
            raise InputError("the outputs file needs harmful and benign rows", source=outputs)
        result["output"] = _figures(pos, neg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores = {side: result[side].pop("_scores") for side in ("input", "output") if side in result}
    result["roc_png"] = str(_plot_roc(scores, out / "roc.png"))
    (out / "guard_eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _load_outputs(path: Path) -> list[dict]:
    if not path.is_file():
        raise InputError("no such outputs file", source=str(path))
    rows = []
    for n, r in iter_jsonl(path):
        text = r.get("output", r.get("response", r.get("text")))
        if not isinstance(text, str) or r.get("label") not in ("harmful", "benign", 0, 1):
            raise InputError("each row needs 'output' (or 'response'/'text') and 'label' harmful|benign", source=str(path), line=n)
        rows.append({"output": text, "prompt": r.get("prompt"), "label": 1 if r["label"] in ("harmful", 1) else 0})
    return rows


def _plot_roc(scores: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for side, (pos, neg) in scores.items():
        pos, neg = np.array(pos), np.array(neg)
        thresholds = np.unique(np.concatenate([pos, neg, [np.inf]]))[::-1]
        tpr = [(pos >= t).mean() for t in thresholds]
        fpr = [(neg >= t).mean() for t in thresholds]
        ax.plot([0] + fpr + [1], [0] + tpr + [1], label=f"{side} (AUROC {roc_auc(pos, neg):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey")
    ax.axvline(0.01, ls=":", color="red", label="1% FPR")
    ax.set_xlabel("false-positive rate (benign blocked)")
    ax.set_ylabel("true-positive rate (harmful blocked)")
    ax.set_title("Guard stage 1 ROC", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
