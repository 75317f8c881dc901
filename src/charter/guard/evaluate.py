"""``charter guard eval``: how well and how cheaply the cascade separates harmful from benign.

Per side: the cascade's TPR (harmful blocked) and FPR (benign blocked) at its calibrated
thresholds, the stage-1 score's AUROC and TPR at 1% and 5% FPR, its calibration (expected
calibration error and a reliability table), the escalation rate, and the cost per request (mean
and p99 latency of the whole cascade); pairwise accuracy when preference pairs are given (the
rejected reply should score higher). A ROC curve PNG and a reliability-diagram PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from charter.core.errors import InputError
from charter.core.io import iter_jsonl, load_prompts, safe_label_filter
from charter.core.stats import rate
from charter.guard.classifier import roc_auc
from charter.guard.metrics import ece, pairwise_accuracy, reliability, tpr_at_fpr
from charter.guard.model import Guard
from charter.guard.synth import load_preference_pairs


def _figures(decisions_pos: list, decisions_neg: list) -> dict:
    pos = np.array([d.stage1_score for d in decisions_pos])
    neg = np.array([d.stage1_score for d in decisions_neg])
    every = decisions_pos + decisions_neg
    cost = np.array([sum(d.latency_ms.values()) for d in every])
    prob, y = np.concatenate([pos, neg]), np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    return {
        "n_harmful": len(pos),
        "n_benign": len(neg),
        "tpr": rate(sum(d.block for d in decisions_pos), len(pos)),
        "fpr": rate(sum(d.block for d in decisions_neg), len(neg)),
        "auroc_stage1": roc_auc(pos, neg),
        "tpr_at_1pct_fpr": tpr_at_fpr(pos, neg, 0.01),
        "tpr_at_5pct_fpr": tpr_at_fpr(pos, neg, 0.05),
        "ece": ece(prob, y),
        "reliability": reliability(prob, y),
        "escalation_rate": rate(sum(d.escalate for d in every), len(every)),
        "cost_ms": {"mean": float(cost.mean()), "p99": float(np.percentile(cost, 99))},
        "_scores": (pos.tolist(), neg.tolist()),
    }


def _pairwise(guard: Guard, pairs: list[dict]) -> dict:
    """Pairwise accuracy of the output side's stage-1 score and, when the guard has one, its
    trained stage 2 (each reply scored with its request)."""
    prompts = [p["prompt"] for p in pairs]
    out = {"n_pairs": len(pairs)}
    for name, score in (("stage1", guard.stage1_scores), ("stage2", guard.stage2_scores)):
        chosen = score("output", [p["chosen"] for p in pairs], prompts)
        if chosen is None:
            continue
        out[f"accuracy_{name}"] = pairwise_accuracy(chosen, score("output", [p["rejected"] for p in pairs], prompts))
    return out


def evaluate_guard(
    guard: Guard,
    *,
    harmful: str,
    benign: str,
    outputs: str | None = None,
    out: str | Path,
    column: str | None = None,
    limit: int | None = None,
    pairs: str | None = None,
) -> dict:
    hp = [p.text for p in load_prompts(harmful, column, limit)]
    bp = [p.text for p in load_prompts(benign, column, limit, where=safe_label_filter(benign))]
    result = {
        "guard_format": guard.spec.get("format"),
        "harmful": harmful,
        "benign": benign,
        "input": _figures([guard.check_input(t) for t in hp], [guard.check_input(t) for t in bp]),
    }
    if outputs:
        rows = _load_outputs(Path(outputs))
        pos = [guard.check_output(r["output"], r.get("prompt")) for r in rows if r["label"] == 1]
        neg = [guard.check_output(r["output"], r.get("prompt")) for r in rows if r["label"] == 0]
        if not pos or not neg:
            raise InputError("the outputs file needs harmful and benign rows", source=outputs)
        result["output"] = _figures(pos, neg)
    if pairs:
        if "output" not in guard.heads:
            raise InputError("this guard has no output classifier", source="guard")
        result.setdefault("output", {})["pairwise"] = _pairwise(guard, load_preference_pairs(pairs)[: limit or None])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores = {side: result[side].pop("_scores") for side in ("input", "output") if "_scores" in result.get(side, {})}
    result["roc_png"] = str(_plot_roc(scores, out / "roc.png"))
    result["reliability_png"] = str(
        _plot_reliability({side: result[side]["reliability"] for side in scores}, out / "reliability.png")
    )
    (out / "guard_eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _load_outputs(path: Path) -> list[dict]:
    if not path.is_file():
        raise InputError("no such outputs file", source=str(path))
    rows = []
    for n, r in iter_jsonl(path):
        text = r.get("output", r.get("response", r.get("text")))
        if not isinstance(text, str) or r.get("label") not in ("harmful", "benign", 0, 1):
            raise InputError(
                "each row needs 'output' (or 'response'/'text') and 'label' harmful|benign", source=str(path), line=n
            )
        rows.append({"output": text, "prompt": r.get("prompt"), "label": 1 if r["label"] in ("harmful", 1) else 0})
    return rows


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(5, 5))


def _save(fig, ax, title: str, legend_loc: str, path: Path, legend_size: int = 8) -> Path:
    import matplotlib.pyplot as plt

    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=legend_size, loc=legend_loc)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_reliability(tables: dict, path: Path) -> Path:
    """Reliability diagram: mean predicted probability against the observed harmful share per bin."""
    fig, ax = _figure()
    for side, table in tables.items():
        xs = [r["predicted"] for r in table]
        ys = [r["observed"] for r in table]
        ax.plot(xs, ys, marker="o", label=f"{side} (n per bin: {', '.join(str(r['n']) for r in table)})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
    ax.set_xlabel("predicted P(harmful), stage 1")
    ax.set_ylabel("observed harmful share")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return _save(fig, ax, "Guard stage 1 reliability", "upper left", path, legend_size=7)


def _plot_roc(scores: dict, path: Path) -> Path:
    fig, ax = _figure()
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
    return _save(fig, ax, "Guard stage 1 ROC", "lower right", path)
