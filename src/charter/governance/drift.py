"""Constitution drift audit: what changed between two versions of a constitution, and how much.

Principles are matched first by id, then — for the ones left over on both sides — by meaning:
the statements are embedded with the offline all-MiniLM-L6-v2 model and paired by an optimal
assignment over cosine similarity, so a principle that was renamed (and perhaps reworded) is
recognised as the same principle rather than as one removal plus one addition.

Every matched pair is classified (renamed, reworded, tier moved up/down, hard constraint added,
relaxed or reworded, depth moved) and every unmatched principle is added or removed. The drift
score sums per-principle change magnitudes, weighted by priority (tier) and by hard-constraint
status, over the total weight of both versions: 0 for identical, 1 when nothing carried over.
``history`` applies the same audit to every committed version of a file in git and plots it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from charter.constitution import Constitution, constitution_digest, diff_constitutions, parse_constitution
from charter.constitution.model import Principle
from charter.core.errors import CharterError, InputError
from charter.core.io import save_figure_atomic, write_text_atomic
from charter.core.options import option
from charter.governance.drift_classify import (
    KINDS,
    PrincipleDrift,
    _tier_rank,
    classify_pair,
    document_similarity,
    pair_by_meaning,
    unmatched_drift,
)


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class DriftConfig:
    """Arguments of ``charter constitution drift`` (one field per CLI flag)."""

    match_threshold: float = option(0.7, help="Min statement similarity to pair principles whose ids differ.")
    reword_threshold: float = option(0.98, help="A same-id statement below this similarity counts as reworded.")
    hard_weight: float = option(2.0, help="Weight of a hard constraint relative to a default behaviour.")
    embedder: str | None = option(None, help="Sentence-embedding model directory (default: bundled MiniLM).", path=True)

    def validate(self) -> None:
        for name in ("match_threshold", "reword_threshold"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise InputError(f"must be in (0, 1], got {v}", source="--" + name.replace("_", "-"))
        if self.hard_weight < 1.0:
            raise InputError(f"must be at least 1, got {self.hard_weight}", source="--hard-weight")


@dataclass
class DriftReport:
    old: dict
    new: dict
    score: float
    principles: list[PrincipleDrift]
    counts: dict[str, int]
    tiers_changed: bool
    metadata_changed: list[str]
    categories: dict[str, list[str]]
    document_similarity: float  # cosine between the mean statement embeddings of each version
    config: dict = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return self.old["digest"] == self.new["digest"]

    @property
    def changes(self) -> list[PrincipleDrift]:
        return [p for p in self.principles if p.kinds]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["identical"] = self.identical
        d["principles"] = [asdict(p) | {"label": p.label} for p in self.principles]
        return d

    def lines(self) -> list[str]:
        """A reviewer's summary, most consequential change first."""
        head = (
            f"{self.old['name']} {self.old['version']} -> {self.new['name']} {self.new['version']}: "
            f"drift score {self.score:.3f}"
        )
        if self.identical:
            return [head + " (identical)"]
        out = [
            head,
            "  " + (", ".join(f"{k.replace('_', ' ')} {n}" for k, n in self.counts.items() if n) or "metadata only"),
        ]
        if self.tiers_changed:
            out.append("  ! tier order changed")
        for p in sorted(self.changes, key=lambda p: (min(KINDS.index(k) for k in p.kinds), p.label)):
            sim = f" (similarity {p.similarity:.2f})" if p.similarity is not None and p.matched_by else ""
            out.append(
                f"  {_marker(p.kinds)} {p.label}: {', '.join(k.replace('_', ' ') for k in p.kinds)}{sim}"
                + (f" — {p.detail}" if p.detail else "")
            )
        for side, keys in self.categories.items():
            out += [f"  {'+-~'[('added', 'removed', 'changed').index(side)]} category {k}" for k in keys]
        if self.metadata_changed:
            out.append(f"  metadata changed: {', '.join(self.metadata_changed)}")
        return out


def _marker(kinds: list[str]) -> str:
    if any(k.startswith("hard_constraint") for k in kinds):
        return "!"
    return {"added": "+", "removed": "-"}.get(kinds[0], "~")


def _identity(c: Constitution) -> dict:
    return {"name": c.name, "version": c.version, "digest": constitution_digest(c), "principles": len(c.principles)}


class DriftAuditor:
    """Compares constitutions; holds the embedder and a text -> vector cache across calls."""

    def __init__(self, config: DriftConfig | None = None, *, embedder: Embedder | None = None):
        self.config = config or DriftConfig()
        self.config.validate()
        self._embedder = embedder
        self._cache: dict[str, np.ndarray] = {}

    def _vectors(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            if self._embedder is None:
                from charter.guard.embed import MiniLMEmbedder

                self._embedder = MiniLMEmbedder(self.config.embedder)
            for t, v in zip(todo, self._embedder.embed(todo)):
                self._cache[t] = np.asarray(v, dtype=np.float32) / max(float(np.linalg.norm(v)), 1e-9)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 1), dtype=np.float32)

    def compare(self, old: Constitution, new: Constitution) -> DriftReport:
        cfg = self.config
        structural = diff_constitutions(old, new)
        olds, news = {p.id: p for p in old.principles}, {p.id: p for p in new.principles}
        pairs: list[tuple[Principle, Principle, str]] = [(olds[i], news[i], "id") for i in olds if i in news]
        left = [p for i, p in olds.items() if i not in news]
        right = [p for i, p in news.items() if i not in olds]
        texts = [p.statement for p in old.principles] + [p.statement for p in new.principles]
        vec = dict(zip(texts, self._vectors(texts))) if texts else {}
        if left and right:
            by_meaning, left, right = pair_by_meaning(left, right, vec, cfg.match_threshold)
            pairs += by_meaning

        old_rank = _tier_rank(old)
        new_rank = _tier_rank(new)
        # Tier moves are judged on the tiers both versions have, in each version's order, so adding
        # or dropping a tier elsewhere moves nobody; reordering shared tiers does.
        common = {t.id for t in old.tiers} & {t.id for t in new.tiers}
        old_common = _tier_rank(old, only=common)
        new_common = _tier_rank(new, only=common)
        drifts: list[PrincipleDrift] = []
        for a, b, how in pairs:
            s = float(np.clip(vec[a.statement] @ vec[b.statement], -1.0, 1.0))
            weight = max(self._weight(a, old_rank), self._weight(b, new_rank))
            drifts.append(
                classify_pair(
                    a,
                    b,
                    how,
                    s,
                    reword_threshold=cfg.reword_threshold,
                    old_common=old_common,
                    new_common=new_common,
                    weight=weight,
                )
            )
        drifts += [unmatched_drift(p, removed=True, weight=self._weight(p, old_rank)) for p in left]
        drifts += [unmatched_drift(p, removed=False, weight=self._weight(p, new_rank)) for p in right]
        order = {p.id: k for k, p in enumerate(new.principles)} | {p.id: 1000 + k for k, p in enumerate(old.principles)}
        drifts.sort(key=lambda d: order.get(d.new_id or d.old_id, 10**6))
        return self._report(old, new, structural, drifts, document_similarity(old, new, vec))

    def _report(self, old: Constitution, new: Constitution, structural, drifts: list[PrincipleDrift], doc_sim: float):
        """The report over the classified principles (``structural``: ``diff_constitutions``'s result)."""
        total = sum(d.weight for d in drifts)
        score = sum(d.weight * d.magnitude for d in drifts) / total if total else 0.0
        counts = {k: sum(k in d.kinds for d in drifts) for k in KINDS}
        return DriftReport(
            old=_identity(old),
            new=_identity(new),
            score=round(score, 6),
            principles=drifts,
            counts=counts,
            tiers_changed=structural.tiers_changed,
            metadata_changed=structural.metadata_changed,
            categories={
                "added": structural.categories_added,
                "removed": structural.categories_removed,
                "changed": structural.categories_changed,
            },
            document_similarity=round(doc_sim, 6),
            config=asdict(self.config),
        )

    def _weight(self, p: Principle, rank: dict[str, float]) -> float:
        # Higher tiers weigh more (top tier 2, bottom tier 1); hard constraints hard_weight times more.
        w = 1.0 + rank.get(p.tier, 0.0)
        return w * (self.config.hard_weight if p.is_hard_constraint else 1.0)


# -- history ---------------------------------------------------------------------------------------------


@dataclass
class HistoryPoint:
    commit: str
    date: str
    subject: str
    version: str | None
    digest: str | None
    drift_from_previous: float | None
    drift_from_first: float | None
    counts: dict[str, int] = field(default_factory=dict)
    other: list[str] = field(
        default_factory=list
    )  # metadata, tier-order and category changes from the previous version
    error: str | None = None  # a commit whose file does not parse is recorded, not fatal


def _git(args: list[str], cwd: Path) -> str:
    try:
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise InputError("git is not installed", source="--history") from None
    except subprocess.CalledProcessError as exc:
        raise InputError(
            f"git {' '.join(args[:2])} failed: {exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else exc}",
            source=str(cwd),
        ) from None


def is_shallow(path: str | Path) -> bool:
    """A shallow clone (CI checkouts default to depth 1) hides the file's earlier versions."""
    return _git(["rev-parse", "--is-shallow-repository"], Path(path).resolve().parent).strip() == "true"


def file_history(path: str | Path) -> list[tuple[str, str, str, str]]:
    """(commit, ISO date, subject, file text) for each commit that changed ``path``, oldest first."""
    p = Path(path).resolve()
    if not p.exists():
        raise InputError("no such file", source=str(path))
    cwd = p.parent
    top = Path(_git(["rev-parse", "--show-toplevel"], cwd).strip())
    log = _git(["log", "--follow", "--format=%H%x09%cI%x09%s", "--name-only", "--", str(p)], cwd)
    out, rel = [], str(p.relative_to(top))
    # --name-only gives the path at each commit, which differs from today's after a rename.
    entries, cur = [], None
    for line in log.splitlines():
        head = line.split("\t", 1)[0]
        if (
            "\t" in line and len(head) in (40, 64) and all(ch in "0123456789abcdef" for ch in head)
        ):  # SHA-1 or SHA-256 repos
            cur = line.split("\t", 2)
            entries.append([*cur, rel])
        elif line.strip() and entries:
            entries[-1][3] = line.strip()
    for commit, date, subject, at in reversed(entries):
        try:
            text = _git(["show", f"{commit}:{at}"], top)
        except InputError:
            continue  # deleted in this commit
        out.append((commit, date, subject, text))
    if not out:
        raise InputError("has no committed history in git", source=str(path))
    return out


def drift_history(
    path: str | Path, auditor: DriftAuditor, progress: Callable[[int, int], None] | None = None
) -> list[HistoryPoint]:
    versions = file_history(path)
    points: list[HistoryPoint] = []
    first = prev = None
    for k, (commit, date, subject, text) in enumerate(versions):
        try:
            c = parse_constitution(text, source=f"{path}@{commit[:10]}")
        except CharterError as exc:
            points.append(HistoryPoint(commit, date, subject, None, None, None, None, error=str(exc)))
            if progress:
                progress(k + 1, len(versions))
            continue
        from_prev = auditor.compare(prev, c) if prev is not None else None
        from_first = auditor.compare(first, c) if first is not None else None
        points.append(
            HistoryPoint(
                commit,
                date,
                subject,
                c.version,
                constitution_digest(c),
                from_prev.score if from_prev else (0.0 if prev is None else None),
                from_first.score if from_first else 0.0,
                counts={k2: n for k2, n in (from_prev.counts if from_prev else {}).items() if n},
                other=_other_changes(from_prev) if from_prev else [],
            )
        )
        first = first or c
        prev = c
        if progress:
            progress(k + 1, len(versions))
    return points


def _other_changes(r: DriftReport) -> list[str]:
    out = [f"{k} changed" for k in r.metadata_changed]
    if r.tiers_changed:
        out.append("tier order changed")
    out += [f"category {side} {c}" for side, cats in r.categories.items() for c in cats]
    return out


def plot_history(points: list[HistoryPoint], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [p for p in points if p.error is None]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(points) + 2), 4.2))
    x = list(range(len(ok)))
    ax.bar(
        x, [p.drift_from_previous or 0.0 for p in ok], color="#4c72b0", alpha=0.75, label="drift from previous version"
    )
    ax.plot(
        x,
        [p.drift_from_first or 0.0 for p in ok],
        color="#dd8452",
        marker="o",
        label="cumulative drift from first version",
    )
    for i, p in enumerate(ok):
        hard = sum(n for k, n in p.counts.items() if k.startswith("hard_constraint"))
        if hard:
            ax.annotate("!", (i, (p.drift_from_previous or 0) + 0.02), ha="center", color="#c44e52", fontweight="bold")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{p.version or '?'}\n{p.commit[:7]}\n{p.date[:10]}" for p in ok], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("drift score (0 identical, 1 nothing carried over)")
    ax.set_title(title + "  (! = hard constraint changed)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure_atomic(fig, path)


def write_json(obj, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
