"""Retention: the cut-off before which audit entries are past their period (``AuditLog.purge``
empties their content, keeping their hashes)."""

from __future__ import annotations

from charter.core.clock import audit_time_ago
from charter.core.errors import InputError


def retention_cutoff(days: float | None) -> str:
    """The audit time before which entries are past a retention period of ``days``."""
    if not days:
        raise InputError(
            "no retention period: pass --older-than-days or set [server] retention_days", source="--older-than-days"
        )
    return audit_time_ago(days * 86400)
