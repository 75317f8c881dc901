"""The gateway's tables and every query on them, one module per concern: ``schema`` (the tables,
``connect``), ``tenants``, ``console`` (web-console logins), ``sessions`` (end-user sessions),
``controls`` (the kill switch) and ``incidents`` (and the audit counts trip rules read)."""

from charter.gateway.store.schema import connect, metadata, ready

__all__ = ["connect", "metadata", "ready"]
