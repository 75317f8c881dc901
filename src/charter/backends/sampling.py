"""Sampling one token from a sequence's logits in numpy (the llama.cpp backend samples here, so
each sequence's output depends only on its own seed)."""

from __future__ import annotations

import numpy as np

from charter.backends.base import SamplingConfig


def sample_token(logits: np.ndarray, config: SamplingConfig, rng: np.random.Generator, k: int = 256) -> int:
    """Temperature + top-p sampling with one uniform draw from the sequence's own generator.

    Only the top ``k`` logits are sorted (argpartition is O(vocab)); the full sort runs only when
    they do not reach ``top_p`` of the mass. The result equals sampling from the full filtered
    distribution.
    """
    if config.greedy:
        return int(np.argmax(logits))
    scores = logits.astype(np.float64) / config.temperature
    m = scores.max()
    weights = np.exp(scores - m)
    total = weights.sum()
    k = min(k, scores.shape[0])
    top = np.argpartition(-scores, k - 1)[:k]
    order = top[np.argsort(-scores[top], kind="stable")]
    probs = weights[order] / total
    cum = np.cumsum(probs)
    if config.top_p < 1.0 and cum[-1] >= config.top_p:
        keep = int(np.searchsorted(cum, config.top_p) + 1)  # smallest prefix with mass >= top_p
    else:
        order = np.argsort(-scores, kind="stable")
        probs = weights[order] / total
        cum = np.cumsum(probs)
        keep = int(np.searchsorted(cum, config.top_p) + 1) if config.top_p < 1.0 else len(order)
    keep = min(keep, len(order))
    u = rng.random() * cum[keep - 1]
    return int(order[min(int(np.searchsorted(cum[:keep], u, side="right")), keep - 1)])
