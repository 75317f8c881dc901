"""Synthetic Polis-style votes with planted opinion groups (tests and bench/collective_scale.py)."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# -- synthetic data (tests and the benchmark) ----------------------------------------------------


@dataclass
class SyntheticVotes:
    """Votes with planted opinion groups; ``groups[i]`` is participant i's planted group,
    ``kinds[j]`` whether statement j is a consensus, divisive or noise statement, and
    ``profiles[g, j]`` group g's (P(agree), P(disagree)) on statement j."""

    participant: np.ndarray
    statement: np.ndarray
    vote: np.ndarray
    groups: np.ndarray
    kinds: list[str]
    profiles: np.ndarray

    def participant_id(self, i: int) -> str:
        return f"p{i}"

    def statement_id(self, j: int) -> str:
        return str(j)

    def statement_text(self, j: int) -> str:
        return f"The assistant should honour norm {j} ({self.kinds[j]})."

    def planted(self) -> dict[str, int]:
        return {self.participant_id(i): int(g) for i, g in enumerate(self.groups)}

    def write(self, directory: str | os.PathLike) -> tuple[Path, Path]:
        """votes.csv and statements.csv in ``directory``; votes in random (timestamp-like) order."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        votes, statements = d / "votes.csv", d / "statements.csv"
        body = "".join(
            f"p{p},{s},{v}\n" for p, s, v in zip(self.participant.tolist(), self.statement.tolist(), self.vote.tolist())
        )
        votes.write_text("participant_id,statement_id,vote\n" + body, encoding="utf-8")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["statement_id", "text"])
        w.writerows((self.statement_id(j), self.statement_text(j)) for j in range(len(self.kinds)))
        statements.write_text(buf.getvalue(), encoding="utf-8")
        return votes, statements


def synthetic_votes(
    n_participants: int = 1000,
    n_statements: int = 1127,
    n_votes: int = 38252,
    n_groups: int = 3,
    seed: int = 0,
    *,
    consensus_fraction: float = 0.15,
    divisive_fraction: float = 0.5,
    lean: float = 0.8,
) -> SyntheticVotes:
    """Polis-like votes with planted groups (defaults: the published CCAI experiment's size).

    Group sizes fall off as 1/(g+1). Consensus statements: every group agrees with probability
    0.8. Divisive: each group leans agree or disagree (not all the same way) with probability
    ``lean`` of voting its side. Noise: the same random agree rate for everyone. 10% passes
    throughout. Activity is heavy-tailed (log-normal), everyone votes at least once, and no
    one votes twice on a statement.
    """
    if n_votes > n_participants * n_statements // 2:
        raise ValueError("n_votes must be at most half the participant x statement cells")
    if n_votes < n_participants:
        raise ValueError("n_votes must be at least n_participants (everyone votes once)")
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_groups + 1)
    groups = rng.choice(n_groups, size=n_participants, p=weights / weights.sum())
    kinds_idx = rng.choice(
        3, size=n_statements, p=[consensus_fraction, divisive_fraction, 1 - consensus_fraction - divisive_fraction]
    )
    kinds = [("consensus", "divisive", "noise")[i] for i in kinds_idx]
    # probs[g, s] = (P(agree), P(disagree)); the rest is a pass.
    probs = np.empty((n_groups, n_statements, 2))
    probs[:, kinds_idx == 0] = (0.8, 0.1)
    noise = kinds_idx == 2
    pa = rng.uniform(0.2, 0.6, size=int(noise.sum()))
    probs[:, noise, 0], probs[:, noise, 1] = pa, 0.9 - pa
    divisive = np.flatnonzero(kinds_idx == 1)
    sides = rng.integers(0, 2, size=(len(divisive), n_groups))
    same = sides.min(axis=1) == sides.max(axis=1)
    sides[same, rng.integers(0, n_groups, size=int(same.sum()))] ^= 1  # at least one group on each side
    for g in range(n_groups):
        up = sides[:, g] == 1
        probs[g, divisive[up]] = (lean, 0.9 - lean)
        probs[g, divisive[~up]] = (0.9 - lean, lean)

    # Who votes on what: one vote each first, the rest by heavy-tailed activity, deduplicated.
    activity = rng.lognormal(0.0, 1.0, size=n_participants)
    popularity = rng.lognormal(0.0, 0.5, size=n_statements)
    codes = np.arange(n_participants, dtype=np.int64) * n_statements + rng.integers(
        0, n_statements, size=n_participants
    )
    chosen = [codes]
    total = n_participants
    while total < n_votes:
        m = int((n_votes - total) * 1.2) + 16
        p = rng.choice(n_participants, size=m, p=activity / activity.sum())
        s = rng.choice(n_statements, size=m, p=popularity / popularity.sum())
        chosen.append(p.astype(np.int64) * n_statements + s)
        allc = np.concatenate(chosen)
        _, first = np.unique(allc, return_index=True)
        keep = allc[np.sort(first)]  # first occurrences, so the per-participant first votes survive
        chosen, total = [keep[:n_votes]], min(len(keep), n_votes)
    codes = chosen[0][:n_votes]
    codes = codes[rng.permutation(len(codes))]
    participant = (codes // n_statements).astype(np.int32)
    statement = (codes % n_statements).astype(np.int32)
    pr = probs[groups[participant], statement]
    u = rng.random(len(codes))
    vote = np.where(u < pr[:, 0], 1, np.where(u < pr[:, 0] + pr[:, 1], -1, 0)).astype(np.int8)
    return SyntheticVotes(participant, statement, vote, groups, kinds, probs)
