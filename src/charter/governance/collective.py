"""Collective constitutions: Polis-style opinion groups, group-informed consensus and a drafted
constitution (the method of Collective Constitutional AI).

Input is a Polis-style export: a votes table (participant, statement, vote with 1 agree / -1
disagree / 0 pass) and a statements table (statement id, text). The analysis follows Polis:

1. The participants x statements vote matrix, unseen cells filled with the statement's mean vote
   (as Polis does; or with 0, like a pass), is reduced to 2 principal components. Only
   participants with at least ``min_votes`` votes shape the projection and the groups; everyone's
   votes are still counted. Two departures from Polis, both switchable: the components are fitted
   with rows and columns weighted by 1/sqrt(votes + mean votes) (regularised degree weighting), so
   a few prolific voters or popular statements do not become the components; and a projection is
   scaled by statements / own votes (Polis: the square root of that), which estimates where
   someone would sit had they voted on everything. On planted groups at the published sparsity
   (3% of cells) this lifts recovery from ARI ~0.4-0.75 to ~0.83 (bench/collective_scale.py).
2. k-means on the 2-D projection for k = 2..max_k; the k with the best silhouette wins.
3. Per statement and group: agree / disagree / pass / seen counts. Group-informed consensus is
   prod_g (agree_g + 1) / (seen_g + 2): high only when every group agrees, however small.
4. Representative statements per group: the ratio of the group's (smoothed) agree rate to the
   rest's, among statements where a two-proportion z-test says the group differs (z > 1.2816,
   90% one-sided) and a majority of the group holds that view; the same for disagreement.

``ConstitutionDrafter`` turns statements every group endorses into a constitution TOML file that
validates. Vote matrices are sparse throughout (about 3% dense in published processes), so the
analysis at 10x the published size (10,000 people, 11,270 statements) still takes seconds.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
import string
import time
from datetime import datetime
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import numpy as np
import scipy.sparse as sp

from charter.constitution.loader import parse_constitution
from charter.constitution.model import DEFAULT_TIERS
from charter.core.io import read_text_input, save_figure_atomic, write_text_atomic
from charter.core.errors import InputError, require_at_least_one

Progress = Callable[[str], None]

# Column names accepted for each field, compared after lower-casing and mapping '-'/' ' to '_'.
# Polis exports call them voter-id / comment-id / comment-body.
VOTE_COLUMNS: dict[str, tuple[str, ...]] = {
    "participant_id": ("participant_id", "voter_id", "participant", "pid"),
    "statement_id": ("statement_id", "comment_id", "tid", "statement"),
    "vote": ("vote",),
}
STATEMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "statement_id": ("statement_id", "comment_id", "tid", "id"),
    "text": ("text", "txt", "comment_body", "statement", "body"),
}
# Optional columns, used when present. Polis' comments.csv has ``moderated`` (-1 rejected by the
# moderators, 0 unmoderated, 1 accepted); its votes.csv has ``timestamp`` (when the vote was cast).
STATEMENT_OPTIONAL: dict[str, tuple[str, ...]] = {"moderated": ("moderated", "moderation")}
VOTE_OPTIONAL: dict[str, tuple[str, ...]] = {"timestamp": ("timestamp", "created_at", "voted_at")}
MODERATED_VALUES = {"-1": -1, "-1.0": -1, "0": 0, "0.0": 0, "-0": 0, "": 0, "1": 1, "+1": 1, "1.0": 1}
# Accepted spellings of a vote; anything else is an input error naming the line.
VOTE_VALUES = {"1": 1, "+1": 1, "1.0": 1, "-1": -1, "-1.0": -1, "0": 0, "0.0": 0, "-0": 0}
Z_90 = 1.2816  # one-sided 90% critical value, as Polis uses for representativeness
GROUP_NAMES = string.ascii_uppercase
ANALYSIS_JSON = "analysis.json"
DEFAULT_MIN_GROUP_AGREE = 0.6


# -- configuration ------------------------------------------------------------------------------


@dataclass
class CollectiveConfig:
    """Arguments of ``charter collective analyze`` (one field per CLI flag)."""

    votes: str
    statements: str
    out: str
    k: int | None = None  # force the number of opinion groups (default: chosen by silhouette)
    max_k: int = 5
    min_votes: int = 7  # Polis: participants with fewer votes are counted but not clustered
    impute: Literal["mean", "zero"] = "mean"  # unseen cells: the statement's mean vote (Polis) or 0
    weight: bool = True  # regularised degree weighting of rows and columns in the PCA (Polis: no)
    scale: Literal["full", "sqrt", "none"] = "full"  # projection x (statements / own votes)^1, ^0.5 (Polis) or ^0
    representative: int = 5  # representative statements reported per group
    silhouette_sample: int = 3000  # silhouette on a seeded sample above this many participants (cost is quadratic)
    seed: int = 0
    plot: bool = True

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


# -- input ---------------------------------------------------------------------------------------


@dataclass
class VoteData:
    """Votes as parallel arrays of indices into ``participant_ids`` / ``statement_ids``."""

    participant_ids: list[str]
    statement_ids: list[str]
    texts: list[str]
    participant: np.ndarray  # int32, one entry per vote
    statement: np.ndarray  # int32
    vote: np.ndarray  # int8 in {-1, 0, 1}
    rejected_statement_ids: list[str] = field(default_factory=list)  # moderated = -1: not analysed
    votes_on_rejected: int = 0  # votes dropped because their statement was rejected
    votes_superseded: int = 0  # earlier votes replaced by a later re-vote (needs a timestamp column)

    @property
    def n_participants(self) -> int:
        return len(self.participant_ids)

    @property
    def n_statements(self) -> int:
        return len(self.statement_ids)

    @property
    def n_votes(self) -> int:
        return len(self.vote)

    @functools.cached_property
    def votes_per_participant(self) -> np.ndarray:
        return np.bincount(self.participant, minlength=self.n_participants)


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _read_rows(path: Path, what: str, columns: dict[str, tuple[str, ...]],
               optional: dict[str, tuple[str, ...]] | None = None) -> Iterator[tuple[int, list[str | None]]]:
    """(line, [value per wanted column, then per optional column]) for each data row of a CSV
    file; extra columns ignored, an optional column the header lacks reads as None. The line is
    the row's first physical line, so quoted multi-line texts are located right."""
    source = str(path)
    raw = read_text_input(path, what)
    reader = csv.reader(io.StringIO(raw, newline=""))
    try:
        header = next(reader)
        names = [_norm(h) for h in header]
        index: list[int] = []
        for canonical, aliases in columns.items():
            found = next((names.index(a) for a in aliases if a in names), None)
            if found is None:
                also = ", ".join(a for a in aliases if a != canonical)
                also = f" (also accepted: {also})" if also else ""
                raise InputError(
                    f"missing column {canonical!r}{also}; header has: {', '.join(header)}",
                    source=source,
                    line=1,
                )
            index.append(found)
        for aliases in (optional or {}).values():
            index.append(next((names.index(a) for a in aliases if a in names), -1))
        width = len(header)
        previous = reader.line_num
        for row in reader:
            line, previous = previous + 1, reader.line_num
            if not row:  # a blank line
                continue
            if len(row) != width:
                raise InputError(f"row has {len(row)} fields, the header has {width}", source=source, line=line)
            yield line, [row[i].strip() if i >= 0 else None for i in index]
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", source=source, line=reader.line_num) from None


def load_statements(path: str | os.PathLike) -> tuple[list[str], list[str], list[bool]]:
    """Statement ids, texts and whether the moderators rejected each (a ``moderated`` column
    holding -1, as in Polis' comments.csv), in file order."""
    p = Path(path)
    ids: list[str] = []
    texts: list[str] = []
    rejected: list[bool] = []
    seen: dict[str, int] = {}
    for line, (sid, text, moderated) in _read_rows(p, "statements", STATEMENT_COLUMNS, STATEMENT_OPTIONAL):
        if not sid:
            raise InputError("empty statement id", source=str(p), line=line)
        if sid in seen:
            raise InputError(f"duplicate statement id {sid!r} (first at line {seen[sid]})", source=str(p), line=line)
        if not text:
            raise InputError(f"statement {sid!r} has no text", source=str(p), line=line)
        m = MODERATED_VALUES.get(moderated) if moderated is not None else 0
        if m is None:
            raise InputError(f"moderated must be -1 (rejected), 0 or 1, got {moderated!r}", source=str(p), line=line)
        seen[sid] = line
        ids.append(sid)
        texts.append(text)
        rejected.append(m == -1)
    if not ids:
        raise InputError("no statements (only a header)", source=str(p))
    return ids, texts, rejected


def _timestamp(value: str | None) -> float:
    """Seconds (or milliseconds: only the order matters) from a number or an ISO 8601 time;
    NaN when blank or unreadable (only needed to order re-votes, where it is checked)."""
    if not value:
        return math.nan
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.nan


def load_votes(votes: str | os.PathLike, statements: str | os.PathLike) -> VoteData:
    """Both tables, checked: known statements, votes in {-1, 0, 1}, one vote per participant and
    statement. Errors name the file and line.

    Statements the moderators rejected (``moderated`` = -1) are left out, and so are the votes on
    them (counted in ``votes_on_rejected``). When the votes file has a timestamp column (Polis:
    ``timestamp``), a participant's repeated votes on a statement are re-votes: the latest counts
    and the earlier ones are counted in ``votes_superseded``. Without one, a repeat is an error."""
    all_ids, all_texts, rejected = load_statements(statements)
    s_index = {sid: i for i, sid in enumerate(all_ids)}
    p = Path(votes)
    source = str(p)
    p_index: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[int] = []
    lines: list[int] = []
    stamps: list[float] = []
    raw_stamps: dict[int, str | None] = {}  # line -> value, for the unreadable ones only
    has_time = False
    for line, (pid, sid, value, stamp) in _read_rows(p, "votes", VOTE_COLUMNS, VOTE_OPTIONAL):
        if not pid:
            raise InputError("empty participant id", source=source, line=line)
        s = s_index.get(sid)
        if s is None:
            raise InputError(f"vote names unknown statement {sid!r} (not in {statements})", source=source, line=line)
        v = VOTE_VALUES.get(value)
        if v is None:
            raise InputError(f"vote must be -1, 0 or 1, got {value!r}", source=source, line=line)
        rows.append(p_index.setdefault(pid, len(p_index)))
        cols.append(s)
        vals.append(v)
        lines.append(line)
        if stamp is not None:
            has_time = True
            t = _timestamp(stamp)
            if math.isnan(t):
                raw_stamps[line] = stamp
            stamps.append(t)
    if not rows:
        raise InputError("no votes (only a header)", source=source)
    participant = np.asarray(rows, dtype=np.int32)
    statement = np.asarray(cols, dtype=np.int32)
    vote = np.asarray(vals, dtype=np.int8)
    line_arr = np.asarray(lines)
    time_arr = np.asarray(stamps, dtype=np.float64) if has_time else None

    # Rejected statements: drop them and the votes on them, and renumber the rest.
    is_rejected = np.asarray(rejected, dtype=bool)
    n_rejected_votes = 0
    if is_rejected.any():
        keep_statement = ~is_rejected
        if not keep_statement.any():
            raise InputError("every statement was rejected by the moderators (moderated = -1)", source=str(statements))
        keep = keep_statement[statement]
        n_rejected_votes = int((~keep).sum())
        if not keep.any():
            raise InputError(f"all {n_rejected_votes} votes are on statements the moderators rejected "
                             f"(moderated = -1 in {statements})", source=source)
        renumber = np.cumsum(keep_statement) - 1
        participant, vote, line_arr = participant[keep], vote[keep], line_arr[keep]
        statement = renumber[statement[keep]].astype(np.int32)
        time_arr = time_arr[keep] if time_arr is not None else None
    statement_ids = [sid for sid, r in zip(all_ids, rejected) if not r]
    texts = [t for t, r in zip(all_texts, rejected) if not r]
    rejected_ids = [sid for sid, r in zip(all_ids, rejected) if r]

    participant_ids = list(p_index)
    superseded = 0
    if time_arr is None:
        _check_duplicates(participant, statement, line_arr, participant_ids, statement_ids, source)
    else:
        keep = _latest_votes(participant, statement, line_arr, time_arr, raw_stamps, participant_ids, statement_ids, source)
        if keep is not None:
            superseded = int(len(keep) - keep.sum())
            participant, statement, vote = participant[keep], statement[keep], vote[keep]
    # Participants whose every vote was on a rejected statement are left out too.
    present = np.zeros(len(participant_ids), dtype=bool)
    present[participant] = True
    if not present.all():
        renumber_p = np.cumsum(present) - 1
        participant = renumber_p[participant].astype(np.int32)
        participant_ids = [pid for pid, here in zip(participant_ids, present) if here]
    return VoteData(participant_ids, statement_ids, texts, participant, statement, vote,
                    rejected_statement_ids=rejected_ids, votes_on_rejected=n_rejected_votes, votes_superseded=superseded)


def _pair_codes(participant: np.ndarray, statement: np.ndarray, n_statements: int) -> np.ndarray:
    return participant.astype(np.int64) * n_statements + statement


def _check_duplicates(participant: np.ndarray, statement: np.ndarray, lines: np.ndarray,
                      participant_ids: list[str], statement_ids: list[str], source: str) -> None:
    """Name the earliest line that repeats a (participant, statement) pair: one vote each."""
    codes = _pair_codes(participant, statement, len(statement_ids))
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    repeat = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
    if not len(repeat):
        return
    i = order[repeat[np.argmin(lines[order[repeat]])]]
    first = lines[order[np.searchsorted(ordered, codes[i])]]
    raise InputError(
        f"duplicate vote: participant {participant_ids[participant[i]]!r} already voted on statement "
        f"{statement_ids[statement[i]]!r} at line {first} (without a timestamp column the latest vote "
        "cannot be told; keep one vote per participant and statement)",
        source=source,
        line=int(lines[i]),
    )


def _latest_votes(participant: np.ndarray, statement: np.ndarray, lines: np.ndarray, times: np.ndarray,
                  raw: dict[int, str | None], participant_ids: list[str], statement_ids: list[str],
                  source: str) -> np.ndarray | None:
    """Mask keeping each (participant, statement) pair's latest vote (on equal times, the later
    line); None when there are no repeats. A repeat whose time is unreadable is an error."""
    codes = _pair_codes(participant, statement, len(statement_ids))
    order = np.lexsort((lines, times, codes))  # by pair, then time, then line
    ordered = codes[order]
    same_as_next = ordered[:-1] == ordered[1:]
    if not same_as_next.any():
        return None
    in_repeat = np.zeros(len(codes), dtype=bool)
    in_repeat[:-1] |= same_as_next
    in_repeat[1:] |= same_as_next
    bad = order[in_repeat & np.isnan(times[order])]
    if len(bad):
        i = bad[np.argmin(lines[bad])]
        raise InputError(
            f"participant {participant_ids[participant[i]]!r} voted more than once on statement "
            f"{statement_ids[statement[i]]!r}, and this vote's timestamp {raw.get(int(lines[i]), '')!r} is not a "
            "number or an ISO 8601 time, so the latest vote cannot be told",
            source=source,
            line=int(lines[i]),
        )
    keep = np.ones(len(codes), dtype=bool)
    keep[order[:-1][same_as_next]] = False  # every vote followed by a later one on the same pair
    return keep


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
        result.timings = {"load_s": t1 - t0, **result.timings, "analyze_s": t2 - t1, "write_s": t3 - t2, "total_s": t3 - t0}
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
        overall_agree = agree_rate(r.overall_tally.agree[:, 0], r.overall_tally.seen[:, 0])
        rates = agree_rate(g.agree, g.seen)

        # Plain Python lists once: indexing numpy scalars 10^5 times is the slow part otherwise.
        o = r.overall_tally
        o_agree, o_dis, o_pass, o_seen = (x[:, 0].tolist() for x in (o.agree, o.disagree, o.passed, o.seen))
        g_agree, g_dis, g_pass, g_seen = (x.tolist() for x in (g.agree, g.disagree, g.passed, g.seen))
        consensus, overall, group_rates = r.consensus.round(6).tolist(), overall_agree.round(6).tolist(), rates.round(6).tolist()

        def statement_row(s: int) -> dict[str, Any]:
            return {
                "statement_id": data.statement_ids[s],
                "text": data.texts[s],
                "consensus": consensus[s],
                "agree_rate": overall[s],
                "agree": o_agree[s], "disagree": o_dis[s], "pass": o_pass[s], "seen": o_seen[s],
                "groups": {
                    names[j]: {"agree": g_agree[s][j], "disagree": g_dis[s][j], "pass": g_pass[s][j],
                               "seen": g_seen[s][j], "agree_rate": group_rates[s][j]}
                    for j in range(k)
                },
            }

        order = np.lexsort((-r.overall_tally.seen[:, 0], -r.consensus))
        spread = rates.max(axis=1) - rates.min(axis=1)
        divisive = np.lexsort((-r.overall_tally.seen[:, 0], -spread))[:10]
        groups = []
        for j in range(k):
            members = r.labels == j
            groups.append({
                "id": names[j],
                "size": int(sizes[j]),
                "centroid": [round(float(x), 6) for x in r.projection[members].mean(axis=0)],
                "representative": representative_statements(g, j, cfg.representative, data),
            })
        return {
            "method": "charter collective analyze (Polis-style: PCA, k-means by silhouette, group-informed consensus)",
            "params": {key: v for key, v in asdict(cfg).items() if key not in ("out", "plot")},
            "counts": {
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
            },
            "rejected_statements": list(data.rejected_statement_ids),
            "k": k,
            "k_forced": cfg.k is not None,
            "silhouette": {str(key): (None if v is None else round(v, 6)) for key, v in r.silhouette.items()},
            "explained_variance_ratio": [round(x, 6) for x in r.explained_variance_ratio],
            "groups": groups,
            "consensus": [statement_row(int(s)) for s in order],
            "divisive": [{"statement_id": data.statement_ids[s], "text": data.texts[s],
                          "spread": round(float(spread[s]), 6),
                          "agree_rates": {names[j]: round(float(rates[s, j]), 6) for j in range(k)}}
                         for s in divisive if spread[s] > 0],
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
        w.writerow(["statement_id", "consensus", "agree_rate", "seen", "agree", "disagree", "pass",
                    *(f"agree_rate_{n}" for n in names), *(f"seen_{n}" for n in names), "text"])
        for row in a["consensus"]:
            w.writerow([row["statement_id"], row["consensus"], row["agree_rate"], row["seen"], row["agree"],
                        row["disagree"], row["pass"], *(row["groups"][n]["agree_rate"] for n in names),
                        *(row["groups"][n]["seen"] for n in names), row["text"]])
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


def analysis_json(a: dict[str, Any]) -> str:
    """analysis.json: indented, except one line per consensus row. Indenting forces json's pure
    Python encoder, which took seconds over 10^4 statements; one row a line is as readable."""
    head = json.dumps({key: v for key, v in a.items() if key != "consensus"}, indent=2, ensure_ascii=False)
    rows = ",\n    ".join(json.dumps(row, ensure_ascii=False) for row in a["consensus"])
    return head[: -len("\n}")] + f',\n  "consensus": [\n    {rows}\n  ]\n}}\n'


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
            cand = {"statement_id": data.statement_ids[s], "text": data.texts[s], "direction": direction,
                    "ratio": round(float(ratio[s]), 6), "z": round(float(z[s]), 4),
                    "group_rate": round(float(p_in[s]), 6), "rest_rate": round(float(p_rest[s]), 6),
                    "seen": int(in_seen[s])}
            if s not in best or cand["ratio"] > best[s]["ratio"]:
                best[int(s)] = cand
    return sorted(best.values(), key=lambda c: (-c["ratio"], -c["z"], c["statement_id"]))[:top]


def plot_groups(r: CollectiveResult, path: Path) -> None:
    """Participants on the two components, coloured by group, each group labelled at its centre.
    Uses the Agg canvas directly, so no global matplotlib backend is switched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    out = r.labels < 0
    if out.any():
        ax.scatter(*r.projection[out].T, s=6, c="#bbbbbb", alpha=0.5, linewidths=0, label="not clustered (few votes)")
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    for grp in r.analysis["groups"]:
        j = GROUP_NAMES.index(grp["id"])
        pts = r.projection[r.labels == j]
        color = colors[j % len(colors)]
        ax.scatter(*pts.T, s=8, c=color, alpha=0.6, linewidths=0, label=f"group {grp['id']} (n={grp['size']})")
        ax.annotate(grp["id"], grp["centroid"], fontsize=16, fontweight="bold", ha="center", va="center",
                    color="black", bbox={"boxstyle": "circle", "fc": "white", "ec": color, "alpha": 0.9})
    evr = r.explained_variance_ratio
    ax.set_xlabel(f"PC1 ({evr[0]:.1%} of variance)")
    ax.set_ylabel(f"PC2 ({evr[1]:.1%} of variance)")
    sil = r.silhouette.get(r.k)
    ax.set_title(f"Opinion groups: k = {r.k}" + (f", silhouette {sil:.2f}" if sil is not None else ""))
    ax.legend(loc="best", fontsize=8, markerscale=2)
    fig.tight_layout()
    save_figure_atomic(fig, path)


def render_report(a: dict[str, Any], top: int = 10) -> str:
    """report.md: overview, groups with representative statements, consensus, divisive."""
    c = a["counts"]
    names = [g["id"] for g in a["groups"]]
    sil = ", ".join(f"k={k}: {'-' if v is None else f'{v:.3f}'}" for k, v in a["silhouette"].items())
    evr = a["explained_variance_ratio"]
    lines = [
        "# Collective constitution: opinion groups and consensus",
        "",
        f"- {c['participants']} participants ({c['participants_clustered']} with at least "
        f"{a['params']['min_votes']} votes were clustered), {c['statements']} statements "
        f"({c['statements_with_votes']} with votes), {c['votes']} votes "
        f"({c['agree']} agree, {c['disagree']} disagree, {c['pass']} pass).",
        *([f"- Left out: {c['statements_rejected']} statement(s) the moderators rejected (moderated = -1) and the "
           f"{c['votes_on_rejected_statements']} vote(s) on them."] if c.get("statements_rejected") else []),
        *([f"- {c['votes_superseded']} earlier vote(s) were replaced by the same participant's later re-vote on the "
           "statement (by timestamp)."] if c.get("votes_superseded") else []),
        f"- Opinion groups: **k = {a['k']}** ({'forced with --k' if a['k_forced'] else 'best silhouette'}; "
        f"silhouette {sil}).",
        f"- The two components explain {evr[0]:.1%} and {evr[1]:.1%} of the vote variance.",
        "- Group-informed consensus = product over groups of (agree + 1) / (seen + 2): it is high only if "
        f"every group agrees; with {a['k']} groups and no votes it is {0.5 ** a['k']:.3f}.",
        "",
        "![groups](groups.png)",
        "",
        "## Groups and their representative statements",
        "",
        "A statement represents a group when the group agrees (or disagrees) with it markedly more than "
        f"everyone else (two-proportion z > {Z_90}) and most of the group holds that view; ranked by the "
        "ratio of the group's rate to the rest's.",
    ]
    for g in a["groups"]:
        lines += ["", f"### Group {g['id']} — {g['size']} participants", ""]
        if not g["representative"]:
            lines.append("No statement separates this group significantly.")
            continue
        lines += ["| statement | view | group | rest | ratio |", "|---|---|---|---|---|"]
        for s in g["representative"]:
            lines.append(f"| {_md(s['text'])} ({s['statement_id']}) | {s['direction']} | {s['group_rate']:.2f} | "
                         f"{s['rest_rate']:.2f} | {s['ratio']:.2f} |")
    head = " | ".join(f"{n} agree" for n in names)
    lines += ["", f"## Top {top} consensus statements", "",
              f"| statement | consensus | agree (all) | {head} | votes |",
              "|---|---|---|" + "---|" * len(names) + "---|"]
    for s in a["consensus"][:top]:
        per = " | ".join(f"{s['groups'][n]['agree_rate']:.2f}" for n in names)
        lines.append(f"| {_md(s['text'])} ({s['statement_id']}) | {s['consensus']:.3f} | {s['agree_rate']:.2f} | "
                     f"{per} | {s['seen']} |")
    lines += ["", "## Most divisive statements", "",
              "Largest gap between the groups' agree rates.", "",
              f"| statement | gap | {' | '.join(names)} |", "|---|---|" + "---|" * len(names)]
    for s in a["divisive"][:top]:
        per = " | ".join(f"{s['agree_rates'][n]:.2f}" for n in names)
        lines.append(f"| {_md(s['text'])} ({s['statement_id']}) | {s['spread']:.2f} | {per} |")
    lines += ["", "Rates are smoothed: (count + 1) / (seen + 2). Draft a constitution from these statements "
              "with `charter collective draft`.", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# -- drafting a constitution ---------------------------------------------------------------------


@dataclass
class DraftConfig:
    """Arguments of ``charter collective draft`` (one field per CLI flag).

    Selection: with neither ``threshold`` nor ``min_group_agree`` given, every opinion group's
    smoothed agree rate must be at least 0.6 (``DEFAULT_MIN_GROUP_AGREE``). ``threshold`` selects
    by the consensus product instead (its scale shrinks with the number of groups: 0.6 in each of
    3 groups is 0.216); give both to require both.
    """

    analysis: str
    out: str
    threshold: float | None = None
    min_group_agree: float | None = None
    min_seen: int = 5  # votes each group must have cast on a statement
    max_principles: int | None = None
    name: str = "collective-constitution"
    version: str = "0.1.0"
    tier: str = "broadly_ethical"

    def validate(self) -> None:
        for flag, v in (("--threshold", self.threshold), ("--min-group-agree", self.min_group_agree)):
            if v is not None and not 0.0 < v < 1.0:
                raise InputError(f"must be in (0, 1), got {v}", source=flag)
        if self.threshold is None and self.min_group_agree is None:
            self.min_group_agree = DEFAULT_MIN_GROUP_AGREE
        if self.min_seen < 0:
            raise InputError("must be at least 0", source="--min-seen")
        require_at_least_one(self, "max_principles")
        tiers = [t for t, _ in DEFAULT_TIERS]
        if self.tier not in tiers:
            raise InputError(f"unknown tier {self.tier!r} (tiers: {', '.join(tiers)})", source="--tier")
        if not self.name.strip() or not self.version.strip():
            raise InputError("--name and --version must not be empty", source="--name" if not self.name.strip() else "--version")


class ConstitutionDrafter:
    """``charter collective draft``: consensus statements -> a validated constitution TOML."""

    def __init__(self, config: DraftConfig):
        config.validate()
        self.config = config

    def load_analysis(self) -> tuple[dict[str, Any], str]:
        p = Path(self.config.analysis)
        path = p / ANALYSIS_JSON if p.is_dir() else p
        if not path.is_file():
            raise InputError(f"no {ANALYSIS_JSON} here: run `charter collective analyze --out DIR` first",
                             source=str(p))
        try:
            a = json.loads(path.read_text(encoding="utf-8"))
            a["consensus"][0]["groups"]  # noqa: B018 (shape check)
            names = [g["id"] for g in a["groups"]]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise InputError(f"not an analysis written by `charter collective analyze` ({exc})", source=str(path)) from None
        if not names:
            raise InputError("the analysis has no opinion groups", source=str(path))
        return a, str(path)

    def select(self, a: dict[str, Any]) -> list[dict[str, Any]]:
        """Statements passing the criteria, highest consensus first. Rates are recomputed from
        the counts so a hand-edited threshold in the JSON cannot drift from the formula."""
        cfg = self.config
        picked = []
        rejected = set(a.get("rejected_statements") or ())
        for row in a["consensus"]:
            if row["statement_id"] in rejected or row.get("moderated") == -1:
                continue  # rejected by the moderators: never a principle
            groups = row["groups"]
            rates = {n: float(agree_rate(g["agree"], g["seen"])) for n, g in groups.items()}
            consensus = math.prod(rates.values())
            if min(g["seen"] for g in groups.values()) < cfg.min_seen:
                continue
            if cfg.threshold is not None and consensus < cfg.threshold:
                continue
            if cfg.min_group_agree is not None and min(rates.values()) < cfg.min_group_agree:
                continue
            picked.append(row | {"consensus": consensus, "rates": rates})
        picked.sort(key=lambda r: (-r["consensus"], -r["seen"]))
        return picked[: cfg.max_principles] if cfg.max_principles else picked

    def criterion(self) -> str:
        cfg = self.config
        parts = []
        if cfg.min_group_agree is not None:
            parts.append(f"every opinion group's agree rate (agree+1)/(seen+2) >= {cfg.min_group_agree:g}")
        if cfg.threshold is not None:
            parts.append(f"group-informed consensus >= {cfg.threshold:g}")
        parts.append(f"at least {cfg.min_seen} votes from each group")
        return "; ".join(parts)

    def run(self) -> dict[str, Any]:
        cfg = self.config
        a, source = self.load_analysis()
        picked = self.select(a)
        if not picked:
            best = max((min(float(agree_rate(g["agree"], g["seen"])) for g in r["groups"].values())
                        for r in a["consensus"]), default=0.0)
            raise InputError(
                f"no statement passes the selection ({self.criterion()}); the highest lowest-group agree rate "
                f"is {best:.3f} -- lower --min-group-agree / --threshold or --min-seen",
                source=source,
            )
        text = self.render(a, picked)
        constitution = parse_constitution(text, source=cfg.out)  # never write a file that does not validate
        out = Path(cfg.out)
        if out.is_dir():
            raise InputError("is a directory; give a file name such as constitution.toml", source=cfg.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, text)
        return {"out": str(out), "principles": len(constitution.principles), "candidates": len(a["consensus"]),
                "criterion": self.criterion(), "name": constitution.name, "version": constitution.version,
                "ids": [p.id for p in constitution.principles]}

    def render(self, a: dict[str, Any], picked: list[dict[str, Any]]) -> str:
        cfg = self.config
        c = a["counts"]
        k = len(a["groups"])
        description = (
            f"Drafted from a collective (Polis-style) process: {c['participants']} participants cast {c['votes']} "
            f"votes on {c['statements']} statements, forming {k} opinion groups. Each principle is a participant "
            f"statement endorsed across all groups ({self.criterion()})."
        )
        attribution = (
            "Statements written and voted on by the participants of the collective process; opinion groups and "
            "group-informed consensus computed and this draft generated by `charter collective draft` "
            "(after Collective Constitutional AI). Review before use."
        )
        out = [
            "# Drafted by `charter collective draft` from a collective input process.",
            f"# Source analysis: {a.get('method', 'charter collective analyze')}",
            f"# Selection: {self.criterion()}.",
            "# Principle texts are the participants' statements; critique/revision/preference requests",
            "# are generated from templates. Edit freely: this is a draft for human review.",
            "",
            f"name = {toml_string(cfg.name)}",
            f"version = {toml_string(cfg.version)}",
            f"description = {toml_string(description)}",
            f"attribution = {toml_string(attribution)}",
        ]
        for tier, desc in DEFAULT_TIERS:
            out += ["", "[[tiers]]", f"id = {toml_string(tier)}", f"description = {toml_string(desc)}"]
        ids: set[str] = set()
        for row in picked:
            statement = " ".join(row["text"].split())
            pid = _unique(principle_slug(statement, row["statement_id"]), ids)
            rates = ", ".join(f"{n} {r:.2f}" for n, r in row["rates"].items())
            rationale = (
                f"Publicly endorsed in the collective process (statement {row['statement_id']}): group-informed "
                f"consensus {row['consensus']:.3f} across {k} opinion groups; group agree rates {rates}; "
                f"{row['agree']} of {row['seen']} participants who voted on it agreed."
            )
            out += [
                "",
                "[[principles]]",
                f"id = {toml_string(pid)}",
                f"tier = {toml_string(cfg.tier)}",
                'kind = "default_behaviour"',
                f"statement = {toml_string(statement)}",
                f"rationale = {toml_string(rationale)}",
                "critique = " + toml_string(
                    "Identify specific ways in which the assistant's last response conflicts with this publicly "
                    f"endorsed principle: {statement}"),
                "revision = " + toml_string(
                    f"Please rewrite the assistant response so that it follows this principle: {statement}"),
                "preference = " + toml_string(f"Which response better follows this principle: {statement}"),
            ]
        return "\n".join(out) + "\n"


def toml_string(s: str) -> str:
    """A TOML basic string. JSON's escapes are TOML's (\\" \\\\ \\n \\t \\uXXXX ...), except that TOML
    also forbids a raw DEL, which JSON leaves alone."""
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007F")


def principle_slug(text: str, statement_id: str, max_len: int = 48) -> str:
    """A readable principle id from the statement's words (cut at a word), else from its id."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    slug = ""
    for w in words:
        if len(slug) + len(w) + 1 > max_len:
            break
        slug = f"{slug}-{w}" if slug else w
    if not slug:
        slug = "statement-" + ("-".join(re.findall(r"[a-z0-9]+", statement_id.lower())) or "x")
    return slug


def _unique(slug: str, taken: set[str]) -> str:
    out, n = slug, 2
    while out in taken:
        out, n = f"{slug}-{n}", n + 1
    taken.add(out)
    return out


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
        body = "".join(f"p{p},{s},{v}\n" for p, s, v in zip(self.participant.tolist(), self.statement.tolist(), self.vote.tolist()))
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
    kinds_idx = rng.choice(3, size=n_statements, p=[consensus_fraction, divisive_fraction, 1 - consensus_fraction - divisive_fraction])
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
    codes = np.arange(n_participants, dtype=np.int64) * n_statements + rng.integers(0, n_statements, size=n_participants)
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
