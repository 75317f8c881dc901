"""``charter data filter``: screen a training corpus with the guard's stage 1 (semantic filtering at
ingestion, background 004), with lineage that sealing can include.

Reads JSONL, Parquet or a ``datasets.save_to_disk`` directory as a stream, scores each record's text
field in batches, appends it to ``kept.jsonl`` or ``removed.jsonl`` (with the score, threshold and
reason), and writes ``lineage.json`` (input digest, guard digest and format, counts). Resumable:
``progress.json`` records how far both files are complete; a restart cuts them back to that point.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from charter import __version__
from charter.core.clock import now
from charter.core.digests import file_sha256
from charter.core.errors import InputError
from charter.core.io import iter_jsonl
from charter.guard.model import GUARD_FILE, Guard

KEPT, REMOVED, PROGRESS, LINEAGE = "kept.jsonl", "removed.jsonl", "progress.json", "lineage.json"


@dataclass
class FilterConfig:
    """Arguments of ``charter data filter`` (one field per CLI flag)."""

    guard: str
    input: str
    out: str
    text_field: str = "text"
    side: str = "input"
    batch_size: int = 256
    limit: int | None = None


def _records(path: Path, field: str) -> Iterator[tuple[int, dict]]:
    if path.is_dir():
        try:
            import datasets

            ds = datasets.load_from_disk(str(path))
        except Exception as exc:  # noqa: BLE001 - datasets raises several kinds
            raise InputError(f"not a datasets directory ({exc})", source=str(path)) from None
        if field not in ds.column_names:
            raise InputError(f"no text field {field!r} (columns: {', '.join(ds.column_names)})", source=str(path))
        for i, r in enumerate(ds, start=1):
            yield i, dict(r)
    elif path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if field not in pf.schema_arrow.names:
            raise InputError(f"no text field {field!r} (columns: {', '.join(pf.schema_arrow.names)})", source=str(path))
        i = 0
        for batch in pf.iter_batches(batch_size=1024):
            for r in batch.to_pylist():
                i += 1
                yield i, r
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from iter_jsonl(path)
    else:
        raise InputError("corpus must be .jsonl, .parquet or a datasets directory", source=str(path))


def _digest(path: Path) -> str:
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(p.relative_to(path).as_posix().encode() + b"\0" + file_sha256(p).encode())
    return "sha256:" + h.hexdigest()


class CorpusFilter:
    def __init__(self, config: FilterConfig, guard: Guard | None = None):
        self.config = c = config
        if c.batch_size < 1:
            raise InputError("--batch-size must be at least 1", source="--batch-size")
        self.input = Path(c.input)
        if not self.input.exists():
            raise InputError("no such corpus", source=str(self.input))
        self.guard = guard or Guard.load(c.guard)
        if c.side not in self.guard.heads:
            raise InputError(f"this guard has no {c.side} classifier", source=c.guard)
        self.out = Path(c.out)

    def _resume(self) -> int:
        prog = self.out / PROGRESS
        if not prog.exists():
            for name in (KEPT, REMOVED):
                (self.out / name).write_text("")
            return 0
        state = json.loads(prog.read_text())
        if state.get("input_sha256") != self.input_digest or state.get("guard_sha256") != self.guard_digest:
            raise InputError("holds a filter run of another corpus or guard; use a new --out", source=str(self.out))
        for name, key in ((KEPT, "kept_bytes"), (REMOVED, "removed_bytes")):
            with open(self.out / name, "r+b") as f:
                f.truncate(state[key])  # drop what was appended after the last complete batch
        return int(state["records_done"])

    def run(self, progress: Callable[[int, int, str], None] | None = None) -> dict:
        c = self.config
        report = progress or (lambda d, t, s: None)
        self.input_digest = _digest(self.input)
        self.guard_digest = file_sha256(Path(c.guard) / GUARD_FILE) if (Path(c.guard) / GUARD_FILE).exists() else None
        self.out.mkdir(parents=True, exist_ok=True)
        done = self._resume()
        threshold = self.guard.spec["sides"][c.side]["block_threshold"]
        stream = _records(self.input, c.text_field)
        batch: list[tuple[int, dict]] = []
        seen = 0
        counts = self._counts() if done else {"kept": 0, "removed": 0}
        for n, rec in stream:
            seen += 1
            if seen <= done:
                continue
            if c.limit is not None and seen > c.limit:
                break
            text = rec.get(c.text_field)
            if not isinstance(text, str):
                raise InputError(
                    f"record has no text field {c.text_field!r} (or it is not a string)", source=str(self.input), line=n
                )
            batch.append((n, rec))
            if len(batch) >= c.batch_size:
                done = self._flush(batch, threshold, done, counts)
                batch = []
                report(done, 0, "filtering")
        if batch:
            done = self._flush(batch, threshold, done, counts)
        lineage = {
            "task": "data/filter",
            "charter_version": __version__,
            "created": now(),
            "input": str(self.input),
            "input_sha256": self.input_digest,
            "text_field": c.text_field,
            "guard": str(c.guard),
            "guard_sha256": self.guard_digest,
            "guard_format": self.guard.spec.get("format"),
            "embedder": self.guard.spec.get("embedder"),
            "side": c.side,
            "threshold": threshold,
            "records": done,
            "kept": counts["kept"],
            "removed": counts["removed"],
            "kept_sha256": file_sha256(self.out / KEPT),
            "removed_sha256": file_sha256(self.out / REMOVED),
        }
        (self.out / LINEAGE).write_text(json.dumps(lineage, indent=2) + "\n")
        report(done, done, "done")
        return lineage

    def _counts(self) -> dict:
        return {
            "kept": sum(1 for _ in open(self.out / KEPT, encoding="utf-8")),
            "removed": sum(1 for _ in open(self.out / REMOVED, encoding="utf-8")),
        }

    def _flush(self, batch: list[tuple[int, dict]], threshold: float, done: int, counts: dict) -> int:
        c = self.config
        scores = self.guard.stage1_scores(c.side, [r[c.text_field] for _, r in batch])
        kept, removed = [], []
        for (n, rec), s in zip(batch, scores):
            if s > threshold:
                removed.append(
                    rec
                    | {
                        "_guard": {
                            "score": float(s),
                            "threshold": threshold,
                            "row": n,
                            "reason": f"stage-1 {c.side} score {s:.3f} above the block threshold {threshold:.3f}",
                        }
                    }
                )
            else:
                kept.append(rec)
        sizes = {}
        for name, rows in ((KEPT, kept), (REMOVED, removed)):
            with open(self.out / name, "a", encoding="utf-8") as f:
                f.write("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
                f.flush()
                os.fsync(f.fileno())
                sizes[name] = f.tell()
        counts["kept"] += len(kept)
        counts["removed"] += len(removed)
        done += len(batch)
        tmp = self.out / (PROGRESS + ".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "records_done": done,
                    "kept_bytes": sizes[KEPT],
                    "removed_bytes": sizes[REMOVED],
                    "input_sha256": self.input_digest,
                    "guard_sha256": self.guard_digest,
                }
            )
        )
        tmp.replace(self.out / PROGRESS)
        return done

    def close(self) -> None:
        pass
