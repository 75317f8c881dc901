"""Stage-1 heads and threshold calibration.

``LogisticHead``: L2-regularised logistic regression on fixed features (sentence embeddings, or a
served model's hidden states for the probe), fitted with L-BFGS, classes weighted to balance.
``calibrate_threshold``: the score threshold whose false-positive rate on benign validation
scores is at most the target (default 1%), the operating point Constitutional Classifiers tune.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class LogisticHead:
    def __init__(self, weight: np.ndarray | None = None, bias: float = 0.0, l2: float = 1e-3):
        self.weight = weight
        self.bias = bias
        self.l2 = l2

    def fit(self, x: np.ndarray, y: np.ndarray, *, max_iter: int = 200) -> LogisticHead:
        xt = torch.tensor(x, dtype=torch.float64)
        yt = torch.tensor(y, dtype=torch.float64)
        pos = float(yt.sum())
        neg = float(len(yt) - pos)
        if pos == 0 or neg == 0:
            raise ValueError("training data needs both classes")
        weights = torch.where(yt > 0, len(yt) / (2 * pos), len(yt) / (2 * neg))
        w = torch.zeros(xt.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = xt @ w + b
            loss = (weights * torch.nn.functional.binary_cross_entropy_with_logits(logits, yt, reduction="none")).mean()
            loss = loss + self.l2 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.weight = w.detach().numpy()
        self.bias = float(b.detach())
        return self

    def scores(self, x: np.ndarray) -> np.ndarray:
        if self.weight is None:
            raise ValueError("the head is not fitted")
        z = x.astype(np.float64) @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def state(self) -> dict:
        return {"weight": None if self.weight is None else self.weight.tolist(), "bias": self.bias, "l2": self.l2}

    @classmethod
    def from_state(cls, state: dict) -> LogisticHead:
        return cls(np.asarray(state["weight"], dtype=np.float64), float(state["bias"]), float(state.get("l2", 1e-3)))


def calibrate_threshold(benign_scores: np.ndarray, target_fpr: float = 0.01) -> float:
    """Smallest threshold t with (benign scores > t) / n <= target_fpr on these scores."""
    s = np.sort(np.asarray(benign_scores, dtype=np.float64))
    n = len(s)
    if n == 0:
        raise ValueError("no benign validation scores to calibrate on")
    allowed = math.floor(target_fpr * n)  # benign examples that may score above the threshold
    return float(s[n - allowed - 1])


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUROC as the probability a positive outscores a negative (ties count half)."""
    pos, neg = np.asarray(pos), np.asarray(neg)
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))
