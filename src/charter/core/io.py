"""Input files (CSV / JSONL / JSON / TXT) in, append-only JSONL and atomic files out.

Shared by every stage that reads prompt sets or writes resumable record files. One line-number
convention (1-based, counting newline-separated lines only: U+2028 inside a JSON string is text,
not a line break) and one error shape (``InputError`` naming the file and line).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from charter.core.errors import InputError

# Tried in order when no --column is given; covers the dev sets in shared/data
# (AdvBench `goal`, XSTest and CValues `prompt`, HH-RLHF `chosen` transcripts).
DEFAULT_COLUMNS = ("prompt", "goal", "question", "instruction", "text", "input", "chosen")

_HUMAN_TURN = re.compile(r"\n\nHuman:(.*?)(?=\n\nAssistant:|\n\nHuman:|$)", re.S)


@dataclass(frozen=True)
class PromptRecord:
    id: str  # stable across runs and renames: row number and a hash of the text
    text: str
    source: str
    row: int
    fields: dict = field(default_factory=dict, compare=False, hash=False)  # the --keep columns


def first_human_turn(text: str) -> str:
    """HH-RLHF transcripts ("\\n\\nHuman: ...\\n\\nAssistant: ...") -> the first human turn."""
    m = _HUMAN_TURN.search(text if text.startswith("\n\n") else "\n\n" + text)
    return m.group(1).strip() if m else text


def _pick_column(columns: list[str], column: str | None, source: str) -> str:
    if column is not None:
        if column not in columns:
            raise InputError(f"unknown column {column!r} (columns: {', '.join(columns)})", source=source)
        return column
    for c in DEFAULT_COLUMNS:
        if c in columns:
            return c
    if len(columns) == 1:
        return columns[0]
    raise InputError(
        f"cannot tell which column holds the prompts; pass --column (columns: {', '.join(columns)})", source=source
    )


def json_records(raw: str, source: str, *, json_array: bool) -> list[tuple[int, object]]:
    """(number, value) of each record of a JSON array (``json_array``: numbered 1, 2, ... in order)
    or of a JSONL text (numbered by line). Lines are split on "\\n" only: JSON strings may hold
    U+2028 or \\x85, which ``str.splitlines`` breaks on. Malformed input is an InputError naming
    the line."""
    if json_array:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON: {exc.msg}", source=source, line=exc.lineno) from None
        if not isinstance(data, list):
            raise InputError("a .json file must hold a list", source=source)
        return [(i + 1, o) for i, o in enumerate(data)]
    out: list[tuple[int, object]] = []
    for n, line in enumerate(raw.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON line: {exc.msg}", source=source, line=n) from None
    return out


def read_text_input(path: Path, what: str, *, allow_empty: bool = False) -> str:
    """A user's input file as text (BOM stripped), or a one-line error: missing, not a file, not
    UTF-8, empty."""
    source = str(path)
    if not path.exists():
        raise InputError(f"no such {what} file", source=source)
    if not path.is_file():
        raise InputError("not a file", source=source)
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source=source) from None
    if not allow_empty and not raw.strip():
        raise InputError(f"{what} file is empty", source=source)
    return raw


def load_prompts(
    path: str | os.PathLike,
    column: str | None = None,
    limit: int | None = None,
    *,
    keep: tuple[str, ...] = (),
    where: dict[str, str] | None = None,
    skip: int = 0,
) -> list[PromptRecord]:
    """Prompts from a file. ``keep``: extra columns copied into ``PromptRecord.fields`` (missing
    ones are an error); ``where``: keep only rows whose columns equal these values; ``skip``: drop
    the first N prompts (after filtering), e.g. those used for training."""
    p = Path(path)
    source = str(p)
    raw = read_text_input(p, "prompt")
    suffix = p.suffix.lower()
    rows: list[tuple[int, str]] = []  # (line number, prompt text)
    extras: dict[int, dict] = {}  # line number -> the row's other columns
    wanted = tuple(keep) + tuple(where or {})
    if suffix == ".csv" or suffix == ".tsv":
        rows, extras = _table_rows(raw, suffix, column, wanted, source)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        rows, extras = _json_rows(raw, suffix, column, wanted, source)
    elif suffix in (".txt", ""):
        _check_columns(wanted, [], source)
        rows = [(n, line) for n, line in enumerate(raw.splitlines(), start=1)]
    else:
        raise InputError(
            f"unsupported prompt file type {suffix!r} (use .csv, .tsv, .jsonl, .json or .txt)", source=source
        )

    out: list[PromptRecord] = []
    skipped = 0
    for n, text in rows:
        text = first_human_turn(text).strip() if "\n\nHuman:" in text or text.startswith("Human:") else text.strip()
        if not text:
            continue
        extra = extras.get(n, {})
        if where and any(str(extra.get(k)) != v for k, v in where.items()):
            continue
        if skipped < skip:
            skipped += 1
            continue
        h = hashlib.sha256(text.encode()).hexdigest()[:10]
        out.append(
            PromptRecord(id=f"r{n}-{h}", text=text, source=source, row=n, fields={k: extra.get(k) for k in keep})
        )
        if limit is not None and len(out) >= limit:
            break
    if not out:
        why = " after filtering" if where or skip else " (all rows empty)"
        raise InputError(f"no prompts found{why}", source=source)
    return out


# (line number, prompt text) per row, and line number -> the row's ``wanted`` columns.
_Rows = tuple[list[tuple[int, str]], dict[int, dict]]


def _table_rows(raw: str, suffix: str, column: str | None, wanted: tuple[str, ...], source: str) -> _Rows:
    """The prompt column (and ``wanted`` columns) of a CSV/TSV file's rows."""
    rows: list[tuple[int, str]] = []
    extras: dict[int, dict] = {}
    # newline="" keeps line breaks inside quoted fields (multi-line prompts) intact.
    reader = csv.DictReader(io.StringIO(raw, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
    columns = list(reader.fieldnames or [])
    if not columns:
        raise InputError("CSV file has no header row", source=source)
    col = _pick_column(columns, column, source)
    _check_columns(wanted, columns, source)
    try:
        for i, row in enumerate(reader, start=2):
            if None in row:
                raise InputError(
                    f"row has more fields than the header ({len(columns)})", source=source, line=reader.line_num
                )
            rows.append((i, row.get(col) or ""))
            extras[i] = {k: row.get(k) for k in wanted}
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", source=source, line=reader.line_num) from None
    return rows, extras


def _json_rows(raw: str, suffix: str, column: str | None, wanted: tuple[str, ...], source: str) -> _Rows:
    """The prompts of a JSONL/JSON file: its records when all are strings, else the prompt field
    (and ``wanted`` fields) of each record, which must then all be objects."""
    rows: list[tuple[int, str]] = []
    extras: dict[int, dict] = {}
    objects = json_records(raw, source, json_array=suffix == ".json")
    if all(isinstance(o, str) for _, o in objects):
        if column is not None:
            raise InputError(f"--column {column!r} given but the file holds plain strings", source=source)
        _check_columns(wanted, [], source)
        return [(n, o) for n, o in objects], extras  # type: ignore[misc]
    first_bad = next(((n, o) for n, o in objects if not isinstance(o, dict)), None)
    if first_bad:
        raise InputError("every record must be a JSON object (or every one a string)", source=source, line=first_bad[0])
    columns = list(dict.fromkeys(k for _, o in objects for k in o))  # type: ignore[union-attr]
    col = _pick_column(columns, column, source)
    _check_columns(wanted, columns, source)
    for n, o in objects:
        value = o.get(col)  # type: ignore[union-attr]
        if value is not None and not isinstance(value, str):
            raise InputError(f"field {col!r} is not a string", source=source, line=n)
        rows.append((n, value or ""))
        extras[n] = {k: o.get(k) for k in wanted}  # type: ignore[union-attr]
    return rows, extras


def _check_columns(wanted: tuple[str, ...], columns: list[str], source: str) -> None:
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise InputError(
            f"unknown column {missing[0]!r} (columns: {', '.join(columns) or 'none: plain text'})", source=source
        )


def file_columns(path: str | os.PathLike) -> list[str]:
    """Header columns of a CSV/TSV or the keys of a JSONL file's first record (for defaults)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with open(path, encoding="utf-8-sig", newline="") as f:
                return next(csv.reader(f, delimiter="\t" if suffix == ".tsv" else ","), [])
        if suffix in (".jsonl", ".ndjson"):
            with open(path, encoding="utf-8") as f:
                first = next((line for line in f if line.strip()), "")
            obj = json.loads(first) if first else {}
            return list(obj) if isinstance(obj, dict) else []
    except (OSError, ValueError, UnicodeDecodeError):
        return []  # load_prompts reports the real problem with a line number
    return []


def safe_label_filter(path: str | os.PathLike) -> dict[str, str] | None:
    """``where`` for XSTest-style files: keep ``label == "safe"`` rows when the file has a label column."""
    return {"label": "safe"} if "label" in file_columns(path) else None


# -- append-only JSONL ----------------------------------------------------------------------------


def repair_jsonl(path: Path) -> int:
    """Drop a torn last line left by a kill mid-write; return the number of intact records."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    return data.count(b"\n")


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, record) of a JSONL file we read as input; a malformed line or a record that is
    not a JSON object is an InputError naming the line."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise InputError(f"malformed JSON line: {exc}", source=str(path), line=n) from None
            if not isinstance(obj, dict):
                raise InputError("record is not a JSON object", source=str(path), line=n)
            yield n, obj


def read_jsonl(path: Path) -> Iterator[dict]:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _open_private(path: Path, flags: int):
    """A text file opened with ``flags``, created owner-only (0600) when it does not exist."""
    return os.fdopen(os.open(path, flags, 0o600), "a" if flags & os.O_APPEND else "w", encoding="utf-8")


def append_jsonl(path: Path, records: Iterable[dict], *, private: bool = False) -> None:
    """Append records in one write + fsync, so a kill leaves at most one torn line. ``private``:
    a new file is created 0600 (it holds secrets or tenants' content)."""
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if not payload:
        return
    with (
        _open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT) if private else open(path, "a", encoding="utf-8")
    ) as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def write_text_atomic(path: Path, text: str) -> Path:
    """Write beside ``path`` then rename over it: a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def save_figure_atomic(fig, path: Path, *, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG the same way (and close it when pyplot manages it)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure; a bare Figure needs no closing
            import matplotlib.pyplot as plt

            plt.close(fig)
    os.replace(tmp, path)
    return path


def write_jsonl_atomic(path: Path, records: Iterable[dict], *, private: bool = False) -> None:
    """Write beside ``path`` then rename over it; ``private``: the file is created 0600."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    if private:
        tmp.unlink(missing_ok=True)  # a leftover would keep its own mode
    with _open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL) if private else open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
