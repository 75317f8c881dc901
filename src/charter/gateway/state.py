"""Everything one gateway process holds: configuration, database, audit log, kill switch, guard,
upstream, runtime key, attestation and metrics. Built once at start-up (``GatewayState.open``);
routers reach it through a FastAPI dependency."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from charter.audit import AuditLog, GroupCommitWriter, Witness
from charter.constitution import constitution_digest, load_constitution
from charter.core.clock import audit_time_ago
from charter.core.errors import InputError
from charter.gateway.compliance import Compliance, utc_clock
from charter.gateway.config import GatewayConfig, TripRule
from charter.gateway.control import Incidents, KillSwitch, TripWire
from charter.gateway.store import connect
from charter.gateway.tenants import RateLimiter, TenantDirectory, sync_config_tenants
from charter.gateway.upstream import Upstream, load_upstream
from charter.policy.profiles import compose
from charter.provenance.keys import key_id, load_runtime_key, load_secret

log = logging.getLogger("charter.gateway")


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("charter_requests", "Chat requests by outcome", ["outcome"], registry=r)
        self.decisions = Counter("charter_guard_decisions", "Guard decisions", ["side", "stage", "block"], registry=r)
        self.latency = Histogram(
            "charter_request_seconds",
            "Gateway request latency",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.guard_latency = Histogram(
            "charter_guard_seconds",
            "Guard latency per check",
            ["side"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
        )
        self.audit_entries = Counter("charter_audit_entries", "Audit entries appended", registry=r)
        self.suspended = Gauge("charter_suspended", "1 while a suspension applies to the served model", registry=r)
        self.tokens = Counter("charter_completion_tokens", "Completion tokens sent", registry=r)


@dataclass
class Attestation:
    """What the gateway can say about the served model. ``statement_digest`` and ``root_digest``
    are set only when the seal was verified at start (``require_seal``): an unsigned or forged
    ``charter-seal/`` beside the weights must not be named in receipts and headers as if it were
    the model's. Its digests are kept apart, for /v1/attestation to show marked unverified."""

    sealed: bool
    verified: bool
    statement_digest: str | None = None  # verified at start only
    root_digest: str | None = None  # verified at start only
    statement_envelope: dict | None = None
    constitution: dict = field(default_factory=dict)
    unverified_statement_digest: str | None = None  # a seal present but not verified
    unverified_root_digest: str | None = None

    @property
    def status(self) -> str:
        """``verified``, ``unverified`` (a seal is there, nobody checked it) or ``unsealed``."""
        if self.verified and self.statement_digest:
            return "verified"
        return "unverified" if self.sealed else "unsealed"

    @property
    def receipt_digest(self) -> str:
        """The statement digest a receipt names: the verified digest, else ``unverified``/``unsealed``."""
        return self.statement_digest if self.status == "verified" else self.status

    @property
    def header(self) -> str:
        """``X-Charter-Statement-Digest``: ``sha256:…`` only for a seal verified at start."""
        return f"sha256:{self.statement_digest}" if self.status == "verified" else self.status


class GatewayState:
    def __init__(self, config: GatewayConfig, *, upstream: Upstream | None = None, guard=None, clock=None):
        self.config = config
        s = config.server
        self.engine = connect(config.path(s.database), durability=s.durability)
        self.log = audit_log(config, self.engine)
        self.writer = GroupCommitWriter(self.log)  # request entries: group commit under load
        self.killswitch = KillSwitch(self.engine, self.log)
        self.incidents = Incidents(self.engine, self.log)
        self.profile = _profile(config)
        _check_retention(config, self.profile)
        rules = list(config.trip_rules) + [TripRule(**r) for r in self.profile.trip_rules()]
        self.tripwire = TripWire(rules, self.engine, self.log, self.killswitch, self.incidents)
        self.tenants = TenantDirectory(self.engine)
        self.ratelimiter = RateLimiter()
        self.metrics = Metrics()
        sync_config_tenants(self.engine, self.log, config.tenants)  # and revoke those removed from the config
        self.constitution = load_constitution(config.constitution)
        self._load_runtime_key()
        self.upstream = upstream or _load_upstream(config)
        self.guard = guard if guard is not None else _load_guard(config)
        self.refusal = _refusal(self.constitution, self.guard)
        self.compliance = _compliance(config, self.profile, self.engine, clock)
        self.attestation = _attest(self.upstream, config, self.constitution)
        self.system_prompt = _system_prompt(config, self.constitution)
        self._tasks: list[asyncio.Task] = []
        self.killswitch.refresh()
        self.log.append("gateway.start", self._start_entry())

    def _load_runtime_key(self) -> None:
        """The runtime signing key, its public half (PEM, key id) and the console's MAC secret."""
        self.runtime_key = load_runtime_key(self.config.runtime_key_path())
        pub = self.runtime_key.public_key()
        self.runtime_public_pem = pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        self.runtime_key_id = key_id(pub)
        # The console's CSRF/message MAC key: derived from the runtime private key (the same in every
        # process on the key, never published), domain-separated from its signing use.
        private = self.runtime_key.private_numbers().private_value.to_bytes(32, "big")
        self.console_secret = hashlib.sha256(b"charter console csrf v1\0" + private).digest()

    def _start_entry(self) -> dict:
        """The body of the ``gateway.start`` audit entry."""
        return {
            "pid": os.getpid(),
            "model": self.upstream.model_id,
            "statement_digest": self.attestation.statement_digest,
            "constitution": self.attestation.constitution,
            "guard": self.guard.spec.get("digest") if self.guard is not None else None,
            "runtime_key_id": self.runtime_key_id,
            "profiles": self.profile.names,
        }

    def close(self) -> None:
        """Release what a state built only to validate the configuration holds."""
        self.writer.close()
        self.engine.dispose()

    def has_guard(self, side: str) -> bool:
        return self.guard is not None and side in self.guard.heads

    # -- background work -------------------------------------------------------------------------
    def start_background(self) -> None:
        s = self.config.server
        self._tasks = [
            asyncio.create_task(self._every(s.poll_seconds, self._poll)),
            asyncio.create_task(self._every(s.checkpoint_seconds, self._checkpoint)),
        ]
        if s.retention_days:
            self._tasks.append(asyncio.create_task(self._every(3600, self._retention)))

    async def stop_background(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await asyncio.to_thread(self.log.checkpoint, self.runtime_key)
        except Exception:  # noqa: BLE001 - best effort at shutdown
            log.exception("final checkpoint failed")
        await self.upstream.aclose()
        self.close()

    async def _every(self, seconds: float, fn) -> None:
        while True:
            try:
                await asyncio.to_thread(fn)
            except Exception:  # noqa: BLE001 - keep the loop alive; a database hiccup is transient
                log.exception("background task %s failed", fn.__name__)
            await asyncio.sleep(seconds)

    def _poll(self) -> None:
        self.killswitch.refresh()
        self.metrics.suspended.set(1 if self.killswitch.suspended(self.upstream.model_id) else 0)

    def _checkpoint(self) -> None:
        self.log.checkpoint(self.runtime_key)

    def _retention(self) -> None:
        self.log.purge(audit_time_ago(self.config.server.retention_days * 86400), self.runtime_key)


def audit_log(config: GatewayConfig, engine) -> AuditLog:
    """The audit log as configured: every checkpoint this process signs goes to the witness, and
    the last checkpoint may be signed by an earlier runtime key (``earlier_runtime_keys``)."""
    from charter.provenance.keys import load_public_key

    s = config.server
    witness = (
        Witness(config.path(s.witness_file) if s.witness_file else None, s.witness_url)
        if (s.witness_file or s.witness_url)
        else None
    )
    return AuditLog(
        engine, witness=witness, earlier_keys=[load_public_key(config.path(k)) for k in s.earlier_runtime_keys]
    )


def _profile(config: GatewayConfig):
    """The composed compliance profile, with the webhook and distress classifier gateway.toml names."""
    c = config.compliance
    return compose(
        c.profiles,
        {
            "dependency.webhook": (c.handoff_webhook, "gateway.toml"),
            "dependency.classifier": (c.distress_guard, "gateway.toml"),
        },
    )


def _load_upstream(config: GatewayConfig) -> Upstream:
    u = config.upstream
    return load_upstream(
        u.model,
        model_id=u.model_id,
        require_seal=config.path(u.require_seal) if u.require_seal else None,
        timeout=u.timeout,
        api_key=u.api_key,
    )


def _check_retention(config: GatewayConfig, profile) -> None:
    floor = profile.get("retention.min_days")
    days = config.server.retention_days
    if floor and days is not None and days < floor:
        raise InputError(
            f"retention_days = {days:g} is below the {floor:g} days that profile "
            f"{' + '.join(profile.sources['retention.min_days'])} requires",
            source="server.retention_days",
        )


def _compliance(config: GatewayConfig, profile, engine, clock) -> Compliance:
    c = config.compliance
    distress_dir = profile.get("dependency.classifier")
    distress = None
    if distress_dir and profile.get("dependency.enabled"):
        from charter.guard import Guard

        distress = Guard.load(config.path(distress_dir))
    # The watermark secret is read (created on first use) only where a profile marks text.
    key = load_secret(config.watermark_key_path(), "the watermark key") if profile.get("watermark.enabled") else None
    return Compliance(
        profile, engine, idle_minutes=c.idle_minutes, clock=clock or utc_clock, watermark_key=key, distress=distress
    )


def _load_guard(config: GatewayConfig):
    if not config.guard.path:
        return None
    from charter.guard import Guard

    exchange = None
    if config.guard.exchange_model:
        from charter.backends import load_backend
        from charter.guard.exchange import ExchangeClassifier

        exchange = ExchangeClassifier(load_backend(config.guard.exchange_model), load_constitution(config.constitution))
    return Guard.load(
        config.path(config.guard.path), exchange=exchange, batching=config.guard.batching, runtime=config.guard.runtime
    )


def _refusal(constitution, guard) -> str:
    if guard is not None and guard.spec.get("refusal"):
        return guard.spec["refusal"]
    return getattr(constitution, "refusal", None) or "I can't help with that."


def _attest(upstream: Upstream, config: GatewayConfig, constitution) -> Attestation:
    from charter.core.errors import VerificationError
    from charter.provenance.seal import SEAL_DIR, read_envelope, unverified_statement
    from charter.provenance.statement import statement_digest

    c = {"name": constitution.name, "version": constitution.version, "digest": constitution_digest(constitution)}
    mdir = upstream.model_dir
    if not mdir or not (Path(mdir) / SEAL_DIR).is_dir():
        return Attestation(False, False, constitution=c)
    if config.upstream.require_seal:
        from charter.provenance.verify import verify_model

        v = verify_model(mdir, config.path(config.upstream.require_seal))
        sealed_c = v.predicate["constitution"]
        if sealed_c["digest"] != c["digest"]:
            raise InputError(
                f"the gateway's constitution {c['name']} {c['version']} is not the one the model was sealed "
                f"with ({sealed_c['name']} {sealed_c['version']})",
                source="constitution",
            )
        return Attestation(True, True, v.statement_digest, v.root_digest, read_envelope(Path(mdir) / SEAL_DIR), c)
    # Not verified (no require_seal): anyone who can write beside the weights can put a charter-seal/
    # there, so its digests are shown only as unverified and never named in receipts or headers.
    try:
        statement, payload = unverified_statement(Path(mdir))
        envelope = read_envelope(Path(mdir) / SEAL_DIR)
        subject = statement["subject"][0]["digest"]["sha256"]
    except (VerificationError, KeyError, IndexError, TypeError, ValueError, OSError):
        # An unreadable unverified seal says nothing; serving without require_seal does not depend on it.
        return Attestation(True, False, constitution=c)
    return Attestation(
        True,
        False,
        None,
        None,
        envelope,
        c,
        unverified_statement_digest=statement_digest(payload),
        unverified_root_digest=subject if isinstance(subject, str) else None,
    )


def _system_prompt(config: GatewayConfig, constitution) -> str | None:
    sp = config.server.system_prompt
    if sp == "none":
        return None
    if sp != "constitution":
        return sp
    lines = [f'You follow the constitution "{constitution.name}" (version {constitution.version}).']
    for p in constitution.principles[:12]:
        lines.append(f"- {p.statement}")
    return "\n".join(lines)
