"""Figures of a classifier's scores: AUROC, TPR at fixed false-positive rates (thresholds set on
the benign scores themselves, so these are operating-point-free), pairwise accuracy, and
calibration (expected calibration error and the reliability table behind the plot)."""

from __future__ import annotations

import numpy as np

from charter.guard.classifier import calibrate_threshold, roc_auc

FPRS = (0.01, 0.05)


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    if not len(pos) or not len(neg):
        return float("nan")
    return float((np.asarray(pos) > calibrate_threshold(np.asarray(neg), fpr)).mean())


def reliability(prob: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict]:
    """Per equal-width probability bin: mean predicted probability, observed harmful share, count."""
    prob, y = np.asarray(prob, dtype=np.float64), np.asarray(y, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        if m.any():
            out.append(
                {
                    "lo": float(edges[b]),
                    "hi": float(edges[b + 1]),
                    "n": int(m.sum()),
                    "predicted": float(prob[m].mean()),
                    "observed": float(y[m].mean()),
                }
            )
    return out


def ece(prob: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: bin-weighted |predicted - observed|."""
    table = reliability(prob, y, bins)
    n = sum(r["n"] for r in table)
    return float(sum(r["n"] * abs(r["predicted"] - r["observed"]) for r in table) / n) if n else float("nan")


def pairwise_accuracy(chosen: np.ndarray, rejected: np.ndarray) -> float:
    """Share of pairs in which the rejected (more harmful) reply scores higher; ties count half."""
    chosen, rejected = np.asarray(chosen), np.asarray(rejected)
    if not len(chosen):
        return float("nan")
    return float(((rejected > chosen).sum() + 0.5 * (rejected == chosen).sum()) / len(chosen))


def side_metrics(prob: np.ndarray, y: np.ndarray, block_threshold: float | None = None) -> dict:
    prob, y = np.asarray(prob, dtype=np.float64), np.asarray(y)
    pos, neg = prob[y == 1], prob[y == 0]
    out = {"n_harmful": int(len(pos)), "n_benign": int(len(neg)), "auroc": roc_auc(pos, neg)}
    for f in FPRS:
        out[f"tpr_at_{int(f * 100)}pct_fpr"] = tpr_at_fpr(pos, neg, f)
    out["ece"] = ece(prob, y)
    if block_threshold is not None:
        out["tpr"] = float((pos > block_threshold).mean()) if len(pos) else float("nan")
        out["fpr"] = float((neg > block_threshold).mean()) if len(neg) else float("nan")
    return out
