"""Interval and rating arithmetic for evaluation reports."""

from __future__ import annotations

import math
from collections.abc import Iterable


def wilson(k: int | float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for k successes in n trials (good at small n and rates near 0/1)."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(k: int | float, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": (k / n) if n else None, "ci95": [lo, hi]}


def bradley_terry_elo(
    games: Iterable[tuple[str, str, float]],
    *,
    pseudo_ties: float = 1.0,
    anchor: str | None = None,
    base: float = 1000.0,
    iterations: int = 2000,
) -> dict[str, float]:
    """Ratings on the Elo scale from pairwise outcomes (score_a: 1 win, 0.5 tie, 0 loss).

    The Bradley-Terry maximum-likelihood strengths (Hunter's MM algorithm), mapped to Elo as
    400*log10(strength), order-independent unlike sequential Elo updates. ``pseudo_ties`` adds that
    many virtual ties between every pair that met, so a model that never won keeps a finite
    rating. The ``anchor`` model (default: the first seen) is pinned at ``base``.
    """
    wins: dict[tuple[str, str], float] = {}
    models: list[str] = []
    for a, b, s in games:
        for m in (a, b):
            if m not in models:
                models.append(m)
        wins[(a, b)] = wins.get((a, b), 0.0) + s
        wins[(b, a)] = wins.get((b, a), 0.0) + (1.0 - s)
    if not models:
        return {}
    pairs = {frozenset(k) for k in wins}
    for pair in pairs:
        a, b = tuple(pair)
        wins[(a, b)] += pseudo_ties / 2
        wins[(b, a)] += pseudo_ties / 2
    games_between = {(a, b): wins.get((a, b), 0.0) + wins.get((b, a), 0.0) for a in models for b in models if a != b}
    strength = {m: 1.0 for m in models}
    for _ in range(iterations):
        new = {}
        for i in models:
            w = sum(wins.get((i, j), 0.0) for j in models if j != i)
            denom = sum(
                games_between[(i, j)] / (strength[i] + strength[j]) for j in models if j != i and games_between[(i, j)]
            )
            new[i] = w / denom if denom else strength[i]
        norm = math.exp(sum(math.log(max(v, 1e-300)) for v in new.values()) / len(new))
        new = {m: max(v / norm, 1e-300) for m, v in new.items()}
        converged = max(abs(new[m] - strength[m]) for m in models) < 1e-12
        strength = new
        if converged:
            break
    ref = anchor or models[0]
    return {m: base + 400.0 * math.log10(strength[m] / strength[ref]) for m in models}
