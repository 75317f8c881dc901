"""Collective-constitution analysis at the published CCAI size and at 10x, with planted groups.

Synthetic Polis-style votes (`tests/governance/synthetic_votes.py`): 1,000 participants,
1,127 statements, 38,252 votes (the published Collective Constitutional AI experiment), 3 planted
opinion groups of unequal size, heavy-tailed activity; then 10x every dimension (10,000 people,
11,270 statements, 382,520 votes: the same votes per statement, a tenth of the density). One
process, one seed; times are medians of --repeats.

Runs, each timed and scored by adjusted Rand index (ARI) against the planted groups over the
participants that are clustered (>= 7 votes):
  charter end to end  `CollectiveAnalysis.run()`: read both CSVs, PCA, k by silhouette, tallies,
                      write analysis.json, consensus.csv, participants.csv, groups.png, report.md
  charter analysis    the in-memory part of the same run (PCA + k-means/silhouette + tallies)
  Polis-exact         the same analysis with `--no-weight --scale sqrt` (Polis' own projection)
  oracle              not a method: each participant assigned to the planted group whose true
                      vote probabilities make their votes most likely -- the ARI ceiling that
                      this sparsity allows
  naive dense         the baseline one writes first: dense 0-filled participants x statements
                      matrix, k-means on the raw rows for k = 2..5, silhouette on the raw rows
                      (sampled to 5,000), 1 thread like Charter's k-means; by default only at 1x
                      (at 10x the dense matrix is 450 MB and the run takes minutes:
                      --naive-at-scale)

    .venv/bin/python bench/collective_scale.py [--scale 10] [--repeats 3] [--naive-at-scale]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from _util import print_table, write_results  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.metrics import adjusted_rand_score, silhouette_score  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from charter.governance.collective import CollectiveAnalysis, CollectiveConfig, load_votes  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.governance.synthetic_votes import SyntheticVotes, synthetic_votes  # noqa: E402


def ari(sv: SyntheticVotes, participant_ids: list[str], labels: np.ndarray) -> float:
    truth = sv.planted()
    m = labels >= 0
    return float(adjusted_rand_score([truth[p] for p, keep in zip(participant_ids, m) if keep], labels[m]))


def naive_dense(sv: SyntheticVotes, min_votes: int, seed: int) -> tuple[int, np.ndarray]:
    """k-means on the raw 0-filled rows, k by silhouette on the raw rows."""
    n_p, n_s = len(sv.groups), len(sv.kinds)
    dense = np.zeros((n_p, n_s), dtype=np.float32)
    dense[sv.participant, sv.statement] = sv.vote
    keep = np.bincount(sv.participant, minlength=n_p) >= min_votes
    rows = dense[keep]
    best = (-2.0, 0, None)
    with threadpool_limits(1):
        for k in range(2, 6):
            lab = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(rows)
            score = silhouette_score(rows, lab, sample_size=min(5000, len(rows)), random_state=seed)
            if score > best[0]:
                best = (score, k, lab)
    labels = np.full(n_p, -1)
    labels[keep] = best[2]
    return best[1], labels


def oracle_labels(sv: SyntheticVotes, min_votes: int) -> np.ndarray:
    """Maximum-likelihood group under the planted profiles (the best any method could do)."""
    probs = np.concatenate([sv.profiles, 1.0 - sv.profiles.sum(axis=2, keepdims=True)], axis=2)
    column = np.where(sv.vote == 1, 0, np.where(sv.vote == -1, 1, 2))
    n_p = len(sv.groups)
    loglik = np.stack(
        [
            np.bincount(sv.participant, weights=np.log(probs[g, sv.statement, column]), minlength=n_p)
            for g in range(len(probs))
        ],
        axis=1,
    )
    labels = loglik.argmax(axis=1)
    labels[np.bincount(sv.participant, minlength=n_p) < min_votes] = -1
    return labels


def median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--participants", type=int, default=1000)
    ap.add_argument("--statements", type=int, default=1127)
    ap.add_argument("--votes", type=int, default=38252)
    ap.add_argument("--groups", type=int, default=3, help="planted opinion groups")
    ap.add_argument("--scale", type=int, default=10, help="the larger size, as a multiple of the published one")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--naive-at-scale", action="store_true", help="also run the dense baseline at the larger size (minutes, ~1 GB)"
    )
    ap.add_argument("--dir", default=None, help="where to write the CSVs and outputs (default: a temp dir)")
    args = ap.parse_args()

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="charter-collective-") as tmp:
        for mult in (1, args.scale):
            size = f"{mult}x"
            sv = synthetic_votes(
                args.participants * mult, args.statements * mult, args.votes * mult, args.groups, seed=args.seed
            )
            votes, statements = sv.write(Path(tmp) / size)
            common = {"size": size, "participants": len(sv.groups), "statements": len(sv.kinds), "votes": len(sv.vote)}

            def run(**kw):
                cfg = CollectiveConfig(str(votes), str(statements), str(Path(tmp) / size / "out"), seed=args.seed, **kw)
                return CollectiveAnalysis(cfg).run()

            run()  # warm-up: imports, page cache
            t, r = median_time(run, args.repeats)
            score = ari(sv, r.data.participant_ids, r.labels)
            rows.append(
                common
                | {
                    "run": "charter end to end",
                    "seconds": t,
                    "k": r.k,
                    "ARI": score,
                    "stages": {key: round(v, 3) for key, v in r.timings.items()},
                }
            )
            data = load_votes(votes, statements)

            def analyse(**kw):
                return CollectiveAnalysis(
                    CollectiveConfig(str(votes), str(statements), "-", seed=args.seed, **kw)
                ).analyze(data)

            t, r = median_time(analyse, args.repeats)
            rows.append(
                common
                | {"run": "charter analysis", "seconds": t, "k": r.k, "ARI": ari(sv, data.participant_ids, r.labels)}
            )
            t, r = median_time(lambda: analyse(weight=False, scale="sqrt"), args.repeats)
            rows.append(
                common
                | {
                    "run": "Polis-exact (--no-weight --scale sqrt)",
                    "seconds": t,
                    "k": r.k,
                    "ARI": ari(sv, data.participant_ids, r.labels),
                }
            )
            ids = [sv.participant_id(i) for i in range(len(sv.groups))]
            rows.append(
                common
                | {
                    "run": "oracle (planted profiles)",
                    "seconds": None,
                    "k": args.groups,
                    "ARI": ari(sv, ids, oracle_labels(sv, 7)),
                }
            )
            if mult == 1 or args.naive_at_scale:
                t, (k, labels) = median_time(lambda: naive_dense(sv, 7, args.seed), 1 if mult > 1 else args.repeats)
                rows.append(common | {"run": "naive dense k-means", "seconds": t, "k": k, "ARI": ari(sv, ids, labels)})
            print(f"{size}: done", file=sys.stderr)

    by = {(r["size"], r["run"]): r for r in rows}
    big = f"{args.scale}x"
    ratios = {
        "end_to_end_big_over_1x": by[(big, "charter end to end")]["seconds"]
        / by[("1x", "charter end to end")]["seconds"],
        "analysis_big_over_1x": by[(big, "charter analysis")]["seconds"] / by[("1x", "charter analysis")]["seconds"],
        "naive_over_charter_analysis_1x": by[("1x", "naive dense k-means")]["seconds"]
        / by[("1x", "charter analysis")]["seconds"],
    }
    if (big, "naive dense k-means") in by:
        ratios["naive_over_charter_analysis_big"] = (
            by[(big, "naive dense k-means")]["seconds"] / by[(big, "charter analysis")]["seconds"]
        )
    for r in rows:
        r["seconds"] = None if r["seconds"] is None else round(r["seconds"], 3)  # None: not timed
        r["ARI"] = round(r["ARI"], 3)
    print(f"cores: {os.cpu_count()}, planted groups: {args.groups}, seed {args.seed}, median of {args.repeats}")
    print_table(
        [r | {"seconds": "-" if r["seconds"] is None else r["seconds"]} for r in rows],
        ["size", "run", "participants", "statements", "votes", "seconds", "k", "ARI"],
    )
    print(", ".join(f"{k} = {v:.2f}" for k, v in ratios.items()))
    path = write_results(
        "collective_scale",
        {
            "cores": os.cpu_count(),
            "groups": args.groups,
            "seed": args.seed,
            "repeats": args.repeats,
            "rows": rows,
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
