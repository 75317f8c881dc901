"""The method: projection, k-means by silhouette, group tallies, consensus and the analysis record."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from charter.core.errors import InputError, require_at_least_one
from charter.core.io import write_text_atomic
from charter.core.options import option
from charter.governance.collective.report import analysis_json, plot_groups, render_report
from charter.governance.collective.votes import ANALYSIS_JSON, GROUP_NAMES, Z_90, Progress, VoteData, load_votes

# -- configuration ------------------------------------------------------------------------------


@dataclass
class CollectiveConfig:
    """Arguments of ``charter collective analyze`` (one field per CLI flag)."""

    votes: str = option(
        help="CSV: participant_id, statement_id, vote (1 agree, -1 disagree, 0 pass). "
        "Polis names (voter-id, comment-id) work too. "
        "With a timestamp column, a re-vote replaces the earlier vote.",
        path=True,
    )
    statements: str = option(
        help="CSV: statement_id, text (Polis: comment-id, comment-body); "
        "statements with moderated = -1 (rejected by the moderators) are left out.",
        path=True,
    )
    out: str = option(
        help="Directory for analysis.json, consensus.csv, participants.csv, groups.png, report.md.", path=True
    )
    k: int | None = option(None, help="Force the number of opinion groups (default: best silhouette in 2..--max-k).")
    max_k: int = option(5, help="Largest number of groups tried.")
    min_votes: int = option(7, help="Participants with fewer votes are counted but not clustered (Polis: 7).")
    impute: Literal["mean", "zero"] = option(
        "mean",
        help="Unseen votes for the PCA: 'mean' (the statement's mean vote, as Polis) or 'zero' (like a pass).",
    )
    weight: bool = option(  # regularised degree weighting of rows and columns
        True,
        help="Weight participants and statements by 1/sqrt(votes + mean votes) in the PCA, "
        "so prolific voters and popular statements do not dominate the components (Polis: --no-weight).",
        flags=("--weight/--no-weight",),
    )
    scale: Literal["full", "sqrt", "none"] = option(  # projection x (statements / own votes)^1, ^0.5 or ^0
        "full",
        help="Projection x (statements / own votes): "
        "'full' (power 1: where they would sit having voted on everything), 'sqrt' (Polis) or 'none'.",
    )
    representative: int = option(5, help="Representative statements reported per group.")
    silhouette_sample: int = option(  # the cost of silhouette is quadratic
        3000, help="Above this many participants, silhouette is scored on a seeded sample."
    )
    seed: int = option(0, help="Seed for PCA (ARPACK start vector), k-means and silhouette sampling.")
    plot: bool = option(True, help="Write groups.png.", flags=("--plot/--no-plot",))

    def validate(self) -> None:
        if self.k is not None and not 2 <= self.k <= len(GROUP_NAMES):
            raise InputError(f"must be between 2 and {len(GROUP_NAMES)}, got {self.k}", source="--k")
        if not 2 <= self.max_k <= len(GROUP_NAMES):
            raise InputError(f"must be between 2 and {len(GROUP_NAMES)}, got {self.max_k}", source="--max-k")
        require_at_least_one(self, "min_votes", "representative")
        if self.impute not in ("zero", "mean"):
            raise InputError(f"must be 'mean' or 'zero', got {self.impute!r}", source="--impute")
        if self.scale not in ("full", "sqrt", "none"):
            raise InputError(f"must be 'full', 'sqrt' or 'none', got {self.scale!r}", source="--scale")
        if self.silhouette_sample < 100:
            raise InputError("must be at least 100", source="--silhouette-sample")


# -- the method -----------------------------------------------------------------------------------


def agree_rate(agree: np.ndarray | int, seen: np.ndarray | int) -> np.ndarray | float:
    """Laplace-smoothed agree rate (agree + 1) / (seen + 2): 0.5 with no votes."""
    return (np.asarray(agree, dtype=float) + 1.0) / (np.asarray(seen, dtype=float) + 2.0)


def group_informed_consensus(agree: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """prod over groups of (agree_g + 1) / (seen_g + 2); arrays are statements x groups."""
    return np.prod(agree_rate(agree, seen), axis=1)


def two_proportion_z(s1: np.ndarray, n1: np.ndarray, s2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """z of p1 > p2 with the same +1/+2 smoothing as the rates (so it is defined for n = 0)."""
    p1 = agree_rate(s1, n1)
    p2 = agree_rate(s2, n2)
    pooled = (np.asarray(s1, float) + s2 + 2.0) / (np.asarray(n1, float) + n2 + 4.0)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / (np.asarray(n1, float) + 2.0) + 1.0 / (np.asarray(n2, float) + 2.0)))
    return (p1 - p2) / se


@dataclass
class Tally:
    """Vote counts per statement (rows) and group (columns), for clustered participants."""

    agree: np.ndarray
    disagree: np.ndarray
    passed: np.ndarray
    seen: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.seen = self.agree + self.disagree + self.passed


def tally(statement: np.ndarray, group: np.ndarray, vote: np.ndarray, n_statements: int, n_groups: int) -> Tally:
    """Counts by bincount over statement * n_groups + group (O(votes)); group < 0 is skipped."""
    keep = group >= 0
    code = statement[keep].astype(np.int64) * n_groups + group[keep]
    v = vote[keep]
    size = n_statements * n_groups

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(code[mask], minlength=size).reshape(n_statements, n_groups)

    return Tally(count(v == 1), count(v == -1), count(v == 0))


@dataclass
class CollectiveResult:
    """What ``CollectiveAnalysis`` found; ``analysis`` is what analysis.json holds."""

    data: VoteData
    labels: np.ndarray  # group index per participant, -1 for the unclustered
    projection: np.ndarray  # participants x 2
    k: int
    silhouette: dict[int, float | None]
    explained_variance_ratio: list[float]
    group_tally: Tally
    overall_tally: Tally  # one column: every participant
    consensus: np.ndarray  # per statement
    analysis: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


class CollectiveAnalysis:
    """``charter collective analyze``: load, project, cluster, tally and write the outputs."""

    def __init__(self, config: CollectiveConfig):
        config.validate()
        self.config = config

    def run(self, progress: Progress | None = None) -> CollectiveResult:
        say = progress or (lambda _stage: None)
        out = Path(self.config.out)
        if out.exists() and not out.is_dir():  # found before minutes of work, not after
            raise InputError("exists and is not a directory", source=self.config.out)
        t0 = time.perf_counter()
        say("reading votes")
        data = load_votes(self.config.votes, self.config.statements)
        t1 = time.perf_counter()
        result = self.analyze(data, say)
        t2 = time.perf_counter()
        say("writing outputs")
        self.write(result)
        t3 = time.perf_counter()
        result.timings = {
            "load_s": t1 - t0,
            **result.timings,
            "analyze_s": t2 - t1,
            "write_s": t3 - t2,
            "total_s": t3 - t0,
        }
        return result

    # -- analysis ----------------------------------------------------------------------------------
    def analyze(self, data: VoteData, progress: Progress | None = None) -> CollectiveResult:
        say = progress or (lambda _stage: None)
        cfg = self.config
        timings: dict[str, float] = {}
        t = time.perf_counter()
        say("projecting (PCA)")
        n_votes = data.votes_per_participant
        clustered = n_votes >= cfg.min_votes
        n_clustered = int(clustered.sum())
        if n_clustered < 3:
            raise InputError(
                f"only {n_clustered} participant(s) cast at least --min-votes {cfg.min_votes} votes "
                f"(most votes by one participant: {int(n_votes.max())}); at least 3 are needed to form "
                "2 opinion groups -- lower --min-votes or collect more votes",
                source=cfg.votes,
            )
        projection, evr = self._project(data, clustered, n_votes)
        timings["pca_s"] = time.perf_counter() - t

        t = time.perf_counter()
        say("clustering (k-means, silhouette)")
        labels_c, k, silhouettes = self._cluster(projection[clustered])
        labels = np.full(data.n_participants, -1, dtype=np.int64)
        labels[clustered] = labels_c
        timings["cluster_s"] = time.perf_counter() - t

        t = time.perf_counter()
        say("tallying consensus and representative statements")
        groups = tally(data.statement, labels[data.participant], data.vote, data.n_statements, k)
        overall = tally(data.statement, np.zeros(data.n_votes, dtype=np.int64), data.vote, data.n_statements, 1)
        consensus = group_informed_consensus(groups.agree, groups.seen)
        result = CollectiveResult(data, labels, projection, k, silhouettes, evr, groups, overall, consensus, {})
        result.analysis = self._summarise(result, n_votes)
        timings["tally_s"] = time.perf_counter() - t
        result.timings = timings
        return result

    def _project(self, data: VoteData, clustered: np.ndarray, n_votes: np.ndarray) -> tuple[np.ndarray, list[float]]:
        """2-D PCA of the sparse vote matrix, fitted on the clustered participants and applied to
        everyone. Zero-fill keeps the matrix sparse and sklearn centres it implicitly; mean
        imputation is the same after subtracting each statement's mean from the seen cells."""
        from sklearn.decomposition import PCA
        from sklearn.utils.sparsefuncs import mean_variance_axis

        cfg = self.config
        values = data.vote.astype(np.float64)
        fit_votes = clustered[data.participant]
        per_statement = np.bincount(data.statement[fit_votes], minlength=data.n_statements)
        if cfg.impute == "mean":
            sums = np.bincount(data.statement[fit_votes], weights=values[fit_votes], minlength=data.n_statements)
            means = np.divide(sums, per_statement, out=np.zeros_like(sums), where=per_statement > 0)
            values = values - means[data.statement]
        if cfg.weight:
            # Regularised degree weighting (as in regularised spectral clustering): a row's or a
            # column's noise grows with its number of votes, and with heavy-tailed activity the
            # top components of the raw sparse matrix are a few prolific voters or popular
            # statements, not the opinion axes. Columns are weighted by 1/sqrt(votes + mean).
            values = values / np.sqrt(per_statement + per_statement.mean())[data.statement]
        X = sp.csr_matrix((values, (data.participant, data.statement)), shape=(data.n_participants, data.n_statements))
        Xc = X[clustered]
        if float(mean_variance_axis(Xc, axis=0)[1].sum()) <= 1e-12:
            raise InputError(
                f"empty groups: all {Xc.shape[0]} clustered participants voted identically, so they cannot be "
                "split into opinion groups",
                source=cfg.votes,
            )
        centre = np.asarray(Xc.mean(axis=0)).ravel()
        if cfg.weight:  # ... and rows by 1/sqrt(votes + mean), for the fit only
            row_votes = n_votes[clustered].astype(np.float64)
            Xc = sp.diags(1.0 / np.sqrt(row_votes + row_votes.mean())) @ Xc
        n_components = min(2, min(Xc.shape) - 1) if min(Xc.shape) > 2 else 1
        if min(Xc.shape) > n_components + 1:
            # ARPACK on the sparse matrix with implicit centring; v0 comes from random_state.
            pca = PCA(n_components=n_components, svd_solver="arpack", random_state=cfg.seed).fit(Xc)
        else:  # tiny inputs (a handful of statements): exact dense SVD
            pca = PCA(n_components=n_components, svd_solver="full").fit(Xc.toarray())
        components = pca.components_
        # Everyone's votes (rows unweighted) on the components, centred on the clustered.
        proj = np.asarray(X @ components.T) - centre @ components.T
        if n_components == 1:
            proj = np.column_stack([proj[:, 0], np.zeros(len(proj))])
        exponent = {"full": 1.0, "sqrt": 0.5, "none": 0.0}[cfg.scale]
        if exponent:
            # A projection sums over the statements someone saw, so it shrinks with fewer votes;
            # statements / own votes undoes that (sqrt: Polis' milder stretch).
            proj *= (data.n_statements / np.maximum(n_votes, 1))[:, None] ** exponent
        evr = [float(x) for x in pca.explained_variance_ratio_] + [0.0] * (2 - n_components)
        return proj, evr

    def _cluster(self, points: np.ndarray) -> tuple[np.ndarray, int, dict[int, float | None]]:
        """k-means for each candidate k; the best silhouette wins (ties: fewer groups). Groups are
        renamed by size, largest first, so A is always the biggest."""
        from threadpoolctl import threadpool_limits

        # 2-D points are tiny work: OpenMP threads only add spin-waits, which on a busy machine
        # turned milliseconds of k-means into seconds. One thread is fast and steady.
        with threadpool_limits(1):
            return self._choose_k(points)

    def _choose_k(self, points: np.ndarray) -> tuple[np.ndarray, int, dict[int, float | None]]:
        """(labels, k, silhouette per candidate k; None where k non-empty groups are impossible)."""
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        cfg = self.config
        n = len(points)
        distinct = len(np.unique(np.round(points, 9), axis=0))
        candidates = [cfg.k] if cfg.k is not None else list(range(2, cfg.max_k + 1))
        silhouettes: dict[int, float | None] = {}
        best: tuple[float, int, np.ndarray] | None = None
        for k in candidates:
            if k >= n or k > distinct:
                silhouettes[k] = None  # not enough distinct participants for k non-empty groups
                continue
            labels = KMeans(n_clusters=k, n_init=10, random_state=cfg.seed).fit_predict(points)
            if len(np.unique(labels)) < k:
                silhouettes[k] = None
                continue
            sample = cfg.silhouette_sample if n > cfg.silhouette_sample else None
            try:
                score = float(silhouette_score(points, labels, sample_size=sample, random_state=cfg.seed))
            except ValueError:  # a sample that missed a small group: score them all
                score = float(silhouette_score(points, labels))
            silhouettes[k] = score
            if best is None or score > best[0] + 1e-12:
                best = (score, k, labels)
        if best is None:
            need = candidates[0] if cfg.k is not None else 2
            raise InputError(
                f"empty groups: {n} clustered participants take only {distinct} distinct positions, "
                f"too few for {need} non-empty opinion groups"
                + (" -- lower --k" if cfg.k is not None else " -- the votes do not separate anyone"),
                source=cfg.votes,
            )
        _, k, labels = best
        sizes = np.bincount(labels, minlength=k)
        rename = np.empty(k, dtype=np.int64)
        rename[np.argsort(-sizes, kind="stable")] = np.arange(k)
        return rename[labels], k, silhouettes

    # -- summary -----------------------------------------------------------------------------------
    def _summarise(self, r: CollectiveResult, n_votes: np.ndarray) -> dict[str, Any]:
        cfg, data, g, k = self.config, r.data, r.group_tally, r.k
        names = GROUP_NAMES[:k]
        sizes = np.bincount(r.labels[r.labels >= 0], minlength=k)
        rates = agree_rate(g.agree, g.seen)
        order = np.lexsort((-r.overall_tally.seen[:, 0], -r.consensus))
        spread = rates.max(axis=1) - rates.min(axis=1)
        divisive = np.lexsort((-r.overall_tally.seen[:, 0], -spread))[:10]
        groups = [
            {
                "id": names[j],
                "size": int(sizes[j]),
                "centroid": [round(float(x), 6) for x in r.projection[r.labels == j].mean(axis=0)],
                "representative": representative_statements(g, j, cfg.representative, data),
            }
            for j in range(k)
        ]
        return {
            "method": "charter collective analyze (Polis-style: PCA, k-means by silhouette, group-informed consensus)",
            "params": {key: v for key, v in asdict(cfg).items() if key not in ("out", "plot")},
            "counts": _counts(r, sizes, n_votes),
            "rejected_statements": list(data.rejected_statement_ids),
            "k": k,
            "k_forced": cfg.k is not None,
            "silhouette": {str(key): (None if v is None else round(v, 6)) for key, v in r.silhouette.items()},
            "explained_variance_ratio": [round(x, 6) for x in r.explained_variance_ratio],
            "groups": groups,
            "consensus": _consensus_rows(r, names, rates, order),
            "divisive": [
                {
                    "statement_id": data.statement_ids[s],
                    "text": data.texts[s],
                    "spread": round(float(spread[s]), 6),
                    "agree_rates": {names[j]: round(float(rates[s, j]), 6) for j in range(k)},
                }
                for s in divisive
                if spread[s] > 0
            ],
        }

    # -- outputs -----------------------------------------------------------------------------------
    def write(self, r: CollectiveResult) -> None:
        out = Path(self.config.out)
        out.mkdir(parents=True, exist_ok=True)
        a = r.analysis
        names = [grp["id"] for grp in a["groups"]]
        # consensus.csv: the same table as analysis.json, flat, for spreadsheets.
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(
            [
                "statement_id",
                "consensus",
                "agree_rate",
                "seen",
                "agree",
                "disagree",
                "pass",
                *(f"agree_rate_{n}" for n in names),
                *(f"seen_{n}" for n in names),
                "text",
            ]
        )
        for row in a["consensus"]:
            w.writerow(
                [
                    row["statement_id"],
                    row["consensus"],
                    row["agree_rate"],
                    row["seen"],
                    row["agree"],
                    row["disagree"],
                    row["pass"],
                    *(row["groups"][n]["agree_rate"] for n in names),
                    *(row["groups"][n]["seen"] for n in names),
                    row["text"],
                ]
            )
        write_text_atomic(out / "consensus.csv", buf.getvalue())
        n_votes = r.data.votes_per_participant
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["participant_id", "group", "pc1", "pc2", "votes"])
        for pid, g, (x, y), n in zip(r.data.participant_ids, r.labels, r.projection, n_votes):
            w.writerow([pid, GROUP_NAMES[g] if g >= 0 else "", f"{x:.6f}", f"{y:.6f}", int(n)])
        write_text_atomic(out / "participants.csv", buf.getvalue())
        if self.config.plot:
            plot_groups(r, out / "groups.png")
        write_text_atomic(out / "report.md", render_report(a))
        # Written last: its presence means the directory is complete (``draft`` reads it).
        write_text_atomic(out / ANALYSIS_JSON, analysis_json(a))


def representative_statements(g: Tally, j: int, top: int, data: VoteData) -> list[dict[str, Any]]:
    """Polis repness for group j: statements the group agrees (or disagrees) with markedly more
    than everyone else clustered, ranked by the ratio of smoothed rates."""
    seen = g.seen
    in_seen, rest_seen = seen[:, j], seen.sum(axis=1) - seen[:, j]
    best: dict[int, dict[str, Any]] = {}
    for direction, counts in (("agree", g.agree), ("disagree", g.disagree)):
        mine, rest = counts[:, j], counts.sum(axis=1) - counts[:, j]
        p_in, p_rest = agree_rate(mine, in_seen), agree_rate(rest, rest_seen)
        ratio = p_in / p_rest
        z = two_proportion_z(mine, in_seen, rest, rest_seen)
        # Significant difference and a majority view inside the group (Polis' two tests).
        for s in np.flatnonzero((z > Z_90) & (p_in > 0.5)):
            cand = {
                "statement_id": data.statement_ids[s],
                "text": data.texts[s],
                "direction": direction,
                "ratio": round(float(ratio[s]), 6),
                "z": round(float(z[s]), 4),
                "group_rate": round(float(p_in[s]), 6),
                "rest_rate": round(float(p_rest[s]), 6),
                "seen": int(in_seen[s]),
            }
            if s not in best or cand["ratio"] > best[s]["ratio"]:
                best[int(s)] = cand
    return sorted(best.values(), key=lambda c: (-c["ratio"], -c["z"], c["statement_id"]))[:top]


def _counts(r: CollectiveResult, sizes: np.ndarray, n_votes: np.ndarray) -> dict[str, Any]:
    """The analysis's head counts: participants, statements and votes."""
    data = r.data
    return {
        "participants": data.n_participants,
        "participants_clustered": int(sizes.sum()),
        "statements": data.n_statements,
        "statements_with_votes": int((r.overall_tally.seen[:, 0] > 0).sum()),
        "statements_rejected": len(data.rejected_statement_ids),
        "votes": data.n_votes,
        "votes_on_rejected_statements": data.votes_on_rejected,
        "votes_superseded": data.votes_superseded,
        "agree": int((data.vote == 1).sum()),
        "disagree": int((data.vote == -1).sum()),
        "pass": int((data.vote == 0).sum()),
        "median_votes_per_participant": float(np.median(n_votes)),
    }


def _consensus_rows(r: CollectiveResult, names: Sequence[str], rates: np.ndarray, order: np.ndarray) -> list[dict]:
    """One row per statement, in ``order``: its consensus, overall tally and each group's tally."""
    data, g, k, o = r.data, r.group_tally, r.k, r.overall_tally
    overall_agree = agree_rate(o.agree[:, 0], o.seen[:, 0])
    # Plain Python lists once: indexing numpy scalars 10^5 times is the slow part otherwise.
    o_agree, o_dis, o_pass, o_seen = (x[:, 0].tolist() for x in (o.agree, o.disagree, o.passed, o.seen))
    g_agree, g_dis, g_pass, g_seen = (x.tolist() for x in (g.agree, g.disagree, g.passed, g.seen))
    consensus, overall, group_rates = (
        r.consensus.round(6).tolist(),
        overall_agree.round(6).tolist(),
        rates.round(6).tolist(),
    )

    def statement_row(s: int) -> dict[str, Any]:
        return {
            "statement_id": data.statement_ids[s],
            "text": data.texts[s],
            "consensus": consensus[s],
            "agree_rate": overall[s],
            "agree": o_agree[s],
            "disagree": o_dis[s],
            "pass": o_pass[s],
            "seen": o_seen[s],
            "groups": {
                names[j]: {
                    "agree": g_agree[s][j],
                    "disagree": g_dis[s][j],
                    "pass": g_pass[s][j],
                    "seen": g_seen[s][j],
                    "agree_rate": group_rates[s][j],
                }
                for j in range(k)
            },
        }

    return [statement_row(int(s)) for s in order]
