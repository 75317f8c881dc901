"""How much of the training data changed between two releases (``charter check``'s training-data
rule): datasets paired across the releases, records compared by content hash where the sealed
files are here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from charter.governance.sealed import sealed_records


def _record_hashes(path: Path, sha256: str) -> set[str] | None:
    """Content hashes of a dataset's records, when the file is here and is the sealed one."""
    records = sealed_records(path, sha256)
    if records is None:
        return None  # the file on disk is not the one sealed: fall back to the digest alone
    out = set()
    for line in records:
        try:
            # Canonical JSON, so re-serialised but identical records count as unchanged.
            line = json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")).encode()
        except ValueError:
            pass
        out.add(hashlib.sha256(line).hexdigest())
    return out


def data_change(base: list[dict], cand: list[dict]) -> tuple[float, list[dict]]:
    """Fraction of training records added or removed, over the union of both releases' records.

    Identical files (same sha256) pair first, wherever and under whatever name they sit; the rest
    pair by stage and name. Where both sealed files are on disk their records are compared by
    canonical-JSON content hash; otherwise a changed dataset counts as wholly changed, at the record
    count its seal recorded."""
    detail, changed_total, union_total = [], 0, 0
    for da, db in _pair_datasets(base, cand):
        name = f"{(da or db).get('stage')}:{(da or db).get('name')}"
        changed, union, how = _dataset_change(da, db)
        detail.append(
            {
                "dataset": name,
                "changed_fraction": round(changed / union, 6) if union else 0.0,
                "records_changed": changed,
                "records_union": union,
                "summary": f"{name} {how}",
            }
        )
        changed_total += changed
        union_total += union
    return (round(changed_total / union_total, 6) if union_total else 0.0), detail


def _pair_datasets(base: list[dict], cand: list[dict]) -> list[tuple[dict | None, dict | None]]:
    """(baseline, candidate) dataset pairs: identical files first, then by (stage, name); a
    dataset only one release has is paired with None."""

    def key(d: dict) -> tuple:
        return (d.get("stage"), d.get("name"))

    left, right = list(base), list(cand)
    pairs: list[tuple[dict | None, dict | None]] = []
    for da in list(left):
        match = next((db for db in right if db["sha256"] == da["sha256"]), None)
        if match is not None:
            pairs.append((da, match))
            left.remove(da)
            right.remove(match)
    by_key = {key(d): d for d in right}
    for da in left:
        db = by_key.pop(key(da), None)
        pairs.append((da, db))
        if db is not None:
            right.remove(db)
    pairs += [(None, db) for db in right]
    return pairs


def _dataset_change(da: dict | None, db: dict | None) -> tuple[int, int, str]:
    """(records changed, records in the union, how) for one pair of datasets."""

    def size(d: dict, hashes: set[str] | None) -> int:
        if hashes is not None:
            return len(hashes)
        return int(d.get("records") or 1)  # seals before record counts: one unit per dataset

    if da and db and da["sha256"] == db["sha256"]:
        n = da.get("records")
        if n is None:  # a seal from before record counts: count the file when it is the sealed one
            hashes = _record_hashes(Path(da["path"]), da["sha256"])
            n = len(hashes) if hashes is not None else 1
        return 0, n, "identical"
    ha = _record_hashes(Path(da["path"]), da["sha256"]) if da else set()
    hb = _record_hashes(Path(db["path"]), db["sha256"]) if db else set()
    if da is None:
        union = changed = size(db, hb)
        return changed, union, "added"
    if db is None:
        union = changed = size(da, ha)
        return changed, union, "removed"
    if ha is not None and hb is not None:
        union = len(ha | hb) or 1
        changed = min(len(ha ^ hb), union)
        return changed, union, f"{changed} of {union} records differ"
    union = changed = max(size(da, ha), size(db, hb))
    return changed, union, "digest changed (files not here to compare records: counted as wholly changed)"
