"""One clock, two spellings: record timestamps (seconds, ``+00:00``) and audit-log timestamps
(microseconds, ``Z``, so that they sort lexically in time order)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

AUDIT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_clock() -> datetime:
    return datetime.now(UTC)


def now() -> str:
    """When a record, manifest or run was written: ISO-8601 UTC to the second."""
    return utc_clock().isoformat(timespec="seconds")


def audit_time(t: datetime | None = None) -> str:
    """An audit-log timestamp (``utc_now()`` when ``t`` is None)."""
    return (t or utc_clock()).astimezone(UTC).strftime(AUDIT_FORMAT)


def utc_now() -> str:
    """The audit-log timestamp of this instant."""
    return audit_time()


def audit_time_ago(seconds: float) -> str:
    """The audit-log timestamp ``seconds`` before now (retention and kill-switch cut-offs)."""
    return audit_time(utc_clock() - timedelta(seconds=seconds))


def parse_time(value: str) -> datetime:
    """An ISO-8601 timestamp in either spelling (``Z`` or an offset) as an aware datetime."""
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)
