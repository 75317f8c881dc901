"""Matching and classifying principles for the constitution drift audit (``charter.governance.drift``):
pairing the principles whose ids differ by meaning, naming each matched pair's changes and their
magnitude, and the unmatched principles (added or removed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charter.constitution import Constitution
from charter.constitution.model import Principle

# Change kinds, in the order a reviewer reads them (most consequential first).
KINDS = (
    "hard_constraint_relaxed",
    "hard_constraint_added",
    "hard_constraint_reworded",
    "removed",
    "added",
    "tier_down",
    "tier_changed",
    "tier_up",
    "reworded",
    "renamed",
    "kind_changed",
    "depth_moved",
    "edited",
    "rationale_changed",
    "examples_changed",
    "requests_changed",
)

# Changes that add a fixed 0.05 each to a pair's magnitude.
_MINOR_KINDS = (
    "depth_moved",
    "examples_changed",
    "requests_changed",
    "renamed",
    "edited",
    "rationale_changed",
    "kind_changed",
)


@dataclass
class PrincipleDrift:
    old_id: str | None
    new_id: str | None
    kinds: list[str]
    similarity: float | None  # cosine similarity of the statements (None for added/removed)
    matched_by: str | None  # "id", "meaning" or None
    old_tier: str | None = None
    new_tier: str | None = None
    magnitude: float = 0.0
    weight: float = 1.0
    detail: str = ""

    @property
    def label(self) -> str:
        if self.old_id and self.new_id and self.old_id != self.new_id:
            return f"{self.old_id} -> {self.new_id}"
        return self.new_id or self.old_id or "?"


def pair_by_meaning(
    left: list[Principle], right: list[Principle], vec: dict[str, np.ndarray], threshold: float
) -> tuple[list[tuple[Principle, Principle, str]], list[Principle], list[Principle]]:
    """Pair the principles only one side has by an optimal assignment over the cosine similarity of
    their statements (pairs below ``threshold`` are dropped); returns the pairs and what is left on
    each side."""
    from scipy.optimize import linear_sum_assignment

    sim = np.stack([vec[p.statement] for p in left]) @ np.stack([vec[p.statement] for p in right]).T
    rows, cols = linear_sum_assignment(-sim)
    paired = [(r, c) for r, c in zip(rows, cols) if sim[r, c] >= threshold]
    pairs = [(left[r], right[c], "meaning") for r, c in paired]
    taken_l, taken_r = {r for r, _ in paired}, {c for _, c in paired}
    left = [p for k, p in enumerate(left) if k not in taken_l]
    right = [p for k, p in enumerate(right) if k not in taken_r]
    return pairs, left, right


def classify_pair(
    a: Principle,
    b: Principle,
    how: str,
    sim: float,
    *,
    reword_threshold: float,
    old_common: dict[str, float],
    new_common: dict[str, float],
    weight: float,
) -> PrincipleDrift:
    """What changed from ``a`` to its match ``b`` (matched ``how``, statements' similarity ``sim``),
    with the change's magnitude; tier moves are ranked on the tiers both versions have
    (``old_common``, ``new_common``)."""
    kinds, details = [], []
    reworded = a.statement != b.statement and sim < reword_threshold
    if a.id != b.id:
        kinds.append("renamed")
    if reworded:
        kinds.append("reworded")
    elif a.statement != b.statement:
        kinds.append("edited")  # same meaning (similarity above the reword threshold): typo or punctuation
    tier_shift = _tier_move(a, b, old_common, new_common, kinds, details)
    hard_shift = _kind_move(a, b, reworded, kinds, details)
    _field_changes(a, b, kinds, details)
    # Magnitude: semantic distance of the statement, plus priority and kind shifts, capped at 1.
    semantic = max(0.0, 1.0 - sim) if reworded else 0.0
    minor = 0.05 * sum(k in kinds for k in _MINOR_KINDS)
    magnitude = min(1.0, semantic + 0.5 * tier_shift + 0.5 * hard_shift + minor)
    return PrincipleDrift(
        a.id,
        b.id,
        kinds,
        sim,
        how,
        old_tier=a.tier,
        new_tier=b.tier,
        magnitude=round(magnitude, 6),
        weight=weight,
        detail="; ".join(details),
    )


def _tier_move(
    a: Principle, b: Principle, old_common: dict, new_common: dict, kinds: list[str], details: list[str]
) -> float:
    """Adds a tier move to ``kinds``/``details``; returns its size (0 for none)."""
    ra, rb = old_common.get(a.tier), new_common.get(b.tier)
    if ra is not None and rb is not None:
        if abs(rb - ra) > 1e-9:
            kinds.append("tier_up" if rb > ra else "tier_down")
            details.append(f"tier {a.tier} -> {b.tier}" if a.tier != b.tier else f"tier {a.tier} reordered")
            return abs(rb - ra)
    elif a.tier != b.tier:
        # A tier only one version has: the move cannot be ranked, so it is flagged as such.
        kinds.append("tier_changed")
        details.append(f"tier {a.tier} -> {b.tier} (not comparable: a tier only one version has)")
        return 0.5
    return 0.0


def _kind_move(a: Principle, b: Principle, reworded: bool, kinds: list[str], details: list[str]) -> float:
    """Adds a change of kind (hard constraint gained, lost or reworded; another kind) to
    ``kinds``/``details``; returns the hard-constraint shift (1 when gained or lost)."""
    if a.is_hard_constraint and not b.is_hard_constraint:
        kinds.insert(0, "hard_constraint_relaxed")
        details.append(f"kind hard constraint -> {b.kind.replace('_', ' ')}")
        return 1.0
    if b.is_hard_constraint and not a.is_hard_constraint:
        kinds.insert(0, "hard_constraint_added")
        details.append(f"kind {a.kind.replace('_', ' ')} -> hard constraint")
        return 1.0
    if a.is_hard_constraint and b.is_hard_constraint:
        # Conservative: a move that cannot be ranked may be a demotion.
        if "tier_down" in kinds or "tier_changed" in kinds:
            kinds.insert(0, "hard_constraint_relaxed")
        elif reworded:
            kinds.insert(0, "hard_constraint_reworded")
    elif a.kind != b.kind:
        kinds.append("kind_changed")
        details.append(f"kind {a.kind} -> {b.kind}")
    return 0.0


def _field_changes(a: Principle, b: Principle, kinds: list[str], details: list[str]) -> None:
    """Adds the changes to depth, rationale, examples and critique/revision/preference requests."""
    if a.depth_fractions != b.depth_fractions:
        kinds.append("depth_moved")
        details.append(f"depth {_depth(a)} -> {_depth(b)}")
    if a.rationale != b.rationale:
        kinds.append("rationale_changed")
    if (a.examples, a.preference_examples) != (b.examples, b.preference_examples):
        kinds.append("examples_changed")
    if (a.critique, a.revision, a.preference) != (b.critique, b.revision, b.preference):
        kinds.append("requests_changed")


def unmatched_drift(p: Principle, *, removed: bool, weight: float) -> PrincipleDrift:
    """A principle only the old version (``removed``) or only the new one has."""
    if removed:
        kinds = ["hard_constraint_relaxed", "removed"] if p.is_hard_constraint else ["removed"]
        return PrincipleDrift(
            p.id, None, kinds, None, None, old_tier=p.tier, magnitude=1.0, weight=weight, detail=_short(p.statement)
        )
    kinds = ["hard_constraint_added", "added"] if p.is_hard_constraint else ["added"]
    return PrincipleDrift(
        None, p.id, kinds, None, None, new_tier=p.tier, magnitude=1.0, weight=weight, detail=_short(p.statement)
    )


def document_similarity(old: Constitution, new: Constitution, vec: dict[str, np.ndarray]) -> float:
    """Cosine between the mean statement embeddings of each version (1 when either has none)."""
    if not (old.principles and new.principles):
        return 1.0
    mo = np.mean([vec[p.statement] for p in old.principles], axis=0)
    mn = np.mean([vec[p.statement] for p in new.principles], axis=0)
    return float(mo @ mn / max(float(np.linalg.norm(mo) * np.linalg.norm(mn)), 1e-9))


def _tier_rank(c: Constitution, only: set[str] | None = None) -> dict[str, float]:
    """Priority of each tier as a fraction: 1.0 for the highest, 0.0 for the lowest (among ``only``)."""
    ids = [t.id for t in c.tiers if only is None or t.id in only]
    n = len(ids)
    return {t: (1.0 if n == 1 else (n - 1 - k) / (n - 1)) for k, t in enumerate(ids)}


def _depth(p: Principle) -> str:
    return p.depth if isinstance(p.depth, str) else f"{p.depth[0]:.2f}-{p.depth[1]:.2f}"


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
