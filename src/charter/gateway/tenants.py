"""Tenants and their API keys (only SHA-256 hashes are stored) and per-key rate limits."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine

from charter.audit import db
from charter.audit.log import utc_now
from charter.errors import InputError

KEY_PREFIX = "chk-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Tenant:
    name: str
    rate_limit_rpm: int
    admin: bool


def add_tenant(engine: Engine, name: str, *, admin: bool = False, rate_limit_rpm: int = 60,
               key: str | None = None) -> str:
    """Create a tenant; returns its API key, shown once (only the hash is kept)."""
    if not name or len(name) > 200:
        raise InputError("tenant name must be 1-200 characters", source="tenant")
    key = key or KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        if conn.execute(select(db.tenants.c.name).where(db.tenants.c.name == name)).first():
            raise InputError(f"tenant {name!r} exists", source="tenant")
        conn.execute(db.tenants.insert().values(name=name, key_hash=hash_key(key), rate_limit_rpm=rate_limit_rpm,
                                                admin=admin, created=utc_now()))
    return key


def upsert_tenant_hash(engine: Engine, name: str, key_sha256: str, *, admin: bool, rate_limit_rpm: int) -> None:
    """Tenants declared in gateway.toml (by key hash) are written at start-up."""
    with engine.begin() as conn:
        conn.execute(db.tenants.delete().where(db.tenants.c.name == name))
        conn.execute(db.tenants.insert().values(name=name, key_hash=key_sha256, rate_limit_rpm=rate_limit_rpm,
                                                admin=admin, created=utc_now()))


class TenantDirectory:
    """Key → tenant lookups, cached briefly so a request costs no database round trip, while a
    revoked key stops working within ``ttl`` seconds."""

    def __init__(self, engine: Engine, ttl: float = 5.0):
        self.engine, self.ttl = engine, ttl
        self._cache: dict[str, tuple[float, Tenant | None]] = {}
        self._lock = threading.Lock()

    def lookup(self, key: str) -> Tenant | None:
        h = hash_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(h)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(select(db.tenants).where(db.tenants.c.key_hash == h)).first()
        tenant = Tenant(row.name, row.rate_limit_rpm, bool(row.admin)) if row else None
        with self._lock:
            self._cache[h] = (now, tenant)
        return tenant


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
