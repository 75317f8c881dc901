"""Polis-style vote and statement tables in: column aliases, moderation, re-votes, sparse codes."""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from charter.core.errors import InputError
from charter.core.io import read_text_input

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


def _read_rows(
    path: Path, what: str, columns: dict[str, tuple[str, ...]], optional: dict[str, tuple[str, ...]] | None = None
) -> Iterator[tuple[int, list[str | None]]]:
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
    source = str(Path(votes))
    v = _read_votes(Path(votes), s_index, statements)
    n_rejected_votes = _drop_rejected(v, rejected, statements, source)
    statement_ids = [sid for sid, r in zip(all_ids, rejected) if not r]
    texts = [t for t, r in zip(all_texts, rejected) if not r]
    rejected_ids = [sid for sid, r in zip(all_ids, rejected) if r]

    participant_ids = v.participant_ids
    participant, statement, vote = v.participant, v.statement, v.vote
    superseded = 0
    if v.time is None:
        _check_duplicates(participant, statement, v.line, participant_ids, statement_ids, source)
    else:
        keep = _latest_votes(
            participant, statement, v.line, v.time, v.raw_stamps, participant_ids, statement_ids, source
        )
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
    return VoteData(
        participant_ids,
        statement_ids,
        texts,
        participant,
        statement,
        vote,
        rejected_statement_ids=rejected_ids,
        votes_on_rejected=n_rejected_votes,
        votes_superseded=superseded,
    )


@dataclass
class _VoteRows:
    """The votes file as read: one entry per row (participant and statement as indices)."""

    participant_ids: list[str]
    participant: np.ndarray
    statement: np.ndarray
    vote: np.ndarray
    line: np.ndarray  # the row's line in the file, for error messages
    time: np.ndarray | None  # the row's timestamp (NaN when unreadable); None without a timestamp column
    raw_stamps: dict[int, str | None]  # line -> value, for the unreadable timestamps only


def _read_votes(p: Path, s_index: dict[str, int], statements: str | os.PathLike) -> _VoteRows:
    """Every row of the votes file, checked: a participant id, a known statement, a valid vote."""
    source = str(p)
    p_index: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[int] = []
    lines: list[int] = []
    stamps: list[float] = []
    raw_stamps: dict[int, str | None] = {}
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
    return _VoteRows(
        list(p_index),
        np.asarray(rows, dtype=np.int32),
        np.asarray(cols, dtype=np.int32),
        np.asarray(vals, dtype=np.int8),
        np.asarray(lines),
        np.asarray(stamps, dtype=np.float64) if has_time else None,
        raw_stamps,
    )


def _drop_rejected(v: _VoteRows, rejected: list[bool], statements: str | os.PathLike, source: str) -> int:
    """Drop the votes on statements the moderators rejected and renumber the other statements (in
    place); returns how many votes were dropped."""
    is_rejected = np.asarray(rejected, dtype=bool)
    if not is_rejected.any():
        return 0
    keep_statement = ~is_rejected
    if not keep_statement.any():
        raise InputError("every statement was rejected by the moderators (moderated = -1)", source=str(statements))
    keep = keep_statement[v.statement]
    n_rejected_votes = int((~keep).sum())
    if not keep.any():
        raise InputError(
            f"all {n_rejected_votes} votes are on statements the moderators rejected (moderated = -1 in {statements})",
            source=source,
        )
    renumber = np.cumsum(keep_statement) - 1
    v.participant, v.vote, v.line = v.participant[keep], v.vote[keep], v.line[keep]
    v.statement = renumber[v.statement[keep]].astype(np.int32)
    v.time = v.time[keep] if v.time is not None else None
    return n_rejected_votes


def _pair_codes(participant: np.ndarray, statement: np.ndarray, n_statements: int) -> np.ndarray:
    return participant.astype(np.int64) * n_statements + statement


def _check_duplicates(
    participant: np.ndarray,
    statement: np.ndarray,
    lines: np.ndarray,
    participant_ids: list[str],
    statement_ids: list[str],
    source: str,
) -> None:
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


def _latest_votes(
    participant: np.ndarray,
    statement: np.ndarray,
    lines: np.ndarray,
    times: np.ndarray,
    raw: dict[int, str | None],
    participant_ids: list[str],
    statement_ids: list[str],
    source: str,
) -> np.ndarray | None:
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
