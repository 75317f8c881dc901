"""Tenants and their API keys (only SHA-256 hashes are stored) and per-key rate limits."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from charter.core.clock import utc_now
from charter.core.errors import InputError
from charter.gateway.store import tenants as store

KEY_PREFIX = "chk-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Tenant:
    name: str
    rate_limit_rpm: int
    admin: bool


def add_tenant(
    engine: Engine, name: str, *, admin: bool = False, rate_limit_rpm: int = 60, key: str | None = None
) -> str:
    """Create a tenant; returns its API key, shown once (only the hash is kept)."""
    if not name or len(name) > 200:
        raise InputError("tenant name must be 1-200 characters", source="tenant")
    key = key or KEY_PREFIX + secrets.token_urlsafe(32)
    if not store.insert(engine, name, hash_key(key), admin=admin, rate_limit_rpm=rate_limit_rpm, created=utc_now()):
        raise InputError(f"tenant {name!r} exists", source="tenant")
    return key


CONFIG_SOURCE = "config"


def upsert_tenant_hash(engine: Engine, name: str, key_sha256: str, *, admin: bool, rate_limit_rpm: int) -> None:
    """Tenants declared in gateway.toml (by key hash) are written at start-up, marked as coming
    from the config. A changed key or a withdrawn admin flag ends the tenant's console sessions."""
    store.replace(
        engine, name, key_sha256, admin=admin, rate_limit_rpm=rate_limit_rpm, source=CONFIG_SOURCE, now=utc_now()
    )


def revoke_tenant(engine: Engine, log, name: str, *, actor: str) -> dict:
    """Delete a tenant (its key stops working) and its console sessions, and log it."""
    gone = store.delete(engine, name)
    if gone is None:
        raise InputError(f"no tenant {name!r}", source="tenant")
    row, n = gone
    info = {
        "tenant": name,
        "admin": bool(row.admin),
        "source": row.source or "cli",
        "console_sessions": n,
        "actor": actor,
    }
    log.append("admin.revoke_tenant", info)
    return info


def sync_config_tenants(engine: Engine, log, declared) -> list[str]:
    """At start: write the ``[[tenants]]`` of gateway.toml, and revoke tenants an earlier config
    declared that this one no longer does (tenants made by ``charter admin add-tenant`` stay).
    Returns the revoked names."""
    for t in declared:
        upsert_tenant_hash(engine, t.name, t.key_sha256, admin=t.admin, rate_limit_rpm=t.rate_limit_rpm)
    names = {t.name for t in declared}
    stale = [n for n in store.names_from(engine, CONFIG_SOURCE) if n not in names]
    revoked = []
    for name in stale:
        try:
            revoke_tenant(engine, log, name, actor="config: no longer in [[tenants]]")
            revoked.append(name)
        except InputError:  # another process starting on the same database revoked it first
            pass
    return revoked


class TenantDirectory:
    """Key → tenant lookups, cached briefly so a request costs no database round trip, while a
    revoked key stops working within ``ttl`` seconds (at once in the process that revoked it).
    The cache is bounded: at most ``max_known`` valid keys and, separately, ``max_unknown``
    invalid ones (least recently used dropped first), so a flood of made-up keys can neither grow
    memory nor push out the valid entries."""

    def __init__(self, engine: Engine, ttl: float = 5.0, *, max_known: int = 10_000, max_unknown: int = 1_024):
        self.engine, self.ttl = engine, ttl
        self.max_known, self.max_unknown = max_known, max_unknown
        self._known: OrderedDict[str, tuple[float, Tenant]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, key: str) -> Tenant | None:
        h = hash_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._known.get(h)
            if hit and now - hit[0] < self.ttl:
                self._known.move_to_end(h)
                return hit[1]
            miss = self._unknown.get(h)
            if miss is not None and now - miss < self.ttl:
                self._unknown.move_to_end(h)
                return None
        row = store.by_key_hash(self.engine, h)
        tenant = Tenant(row.name, row.rate_limit_rpm, bool(row.admin)) if row else None
        with self._lock:
            self._known.pop(h, None)
            self._unknown.pop(h, None)
            if tenant is None:
                self._unknown[h] = now
                while len(self._unknown) > self.max_unknown:
                    self._unknown.popitem(last=False)
            else:
                self._known[h] = (now, tenant)
                while len(self._known) > self.max_known:
                    self._known.popitem(last=False)
        return tenant

    def clear(self) -> None:
        """Forget every cached answer (after a revocation in this process)."""
        with self._lock:
            self._known.clear()
            self._unknown.clear()

    def cached(self) -> tuple[int, int]:
        """(valid, invalid) keys currently cached."""
        with self._lock:
            return len(self._known), len(self._unknown)


class RateLimiter:
    """A token bucket per tenant (requests per minute, bursts up to the minute's allowance).
    Per gateway process: N processes allow up to N× the rate."""

    def __init__(self):
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, tenant: Tenant) -> tuple[bool, float]:
        """(allowed, seconds until the next token)."""
        rate = tenant.rate_limit_rpm / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(tenant.name, (float(tenant.rate_limit_rpm), now))
            tokens = min(float(tenant.rate_limit_rpm), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[tenant.name] = (tokens - 1.0, now)
                return True, 0.0
            self._buckets[tenant.name] = (tokens, now)
            return False, (1.0 - tokens) / rate
