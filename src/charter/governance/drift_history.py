"""A constitution file's drift over its git history, as ``charter constitution drift --history``
reports it: one row per committed version, what changed in words, history.json and history.png."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from charter.governance.drift import (
    DriftAuditor,
    DriftConfig,
    HistoryPoint,
    drift_history,
    plot_history,
    write_json,
)

COLUMNS = ("commit", "date", "version", "from previous", "from first", "changes")


def audit_history(
    path: str | Path, config: DriftConfig, progress: Callable[[int, int], None] | None = None
) -> list[HistoryPoint]:
    """Every committed version of ``path`` against the one before it and the first."""
    return drift_history(path, DriftAuditor(config), progress)


def describe_changes(points: list[HistoryPoint]) -> list[str]:
    """What changed at each version, in words: the parse error, the change counts and other
    changes; else "first version", or "same content" when only comments or formatting moved."""
    out, prev_digest = [], None
    for k, p in enumerate(points):
        changes = p.error or ", ".join([f"{kind.replace('_', ' ')} {n}" for kind, n in p.counts.items()] + p.other)
        if not changes and k == 0:
            changes = "first version"
        elif not changes and p.digest == prev_digest:
            changes = "same content (comments or formatting)"
        prev_digest = p.digest or prev_digest
        out.append(changes)
    return out


def _score(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def history_table(points: list[HistoryPoint]) -> list[tuple[str, ...]]:
    """One row per version under ``COLUMNS``."""
    return [
        (p.commit[:10], p.date[:10], p.version or "-", _score(p.drift_from_previous), _score(p.drift_from_first), c)
        for p, c in zip(points, describe_changes(points))
    ]


def history_rows(points: list[HistoryPoint]) -> list[dict]:
    """The points as JSON rows (history.json and ``--json``)."""
    return [asdict(p) for p in points]


def write_history(points: list[HistoryPoint], out: Path, source: str | Path) -> tuple[Path, Path]:
    """history.json and history.png in ``out``."""
    json_path = write_json(history_rows(points), out / "history.json")
    png = plot_history(points, out / "history.png", f"constitution drift: {source}")
    return json_path, png
