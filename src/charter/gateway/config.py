"""``gateway.toml``: what the gateway serves, where it logs, how it guards. Every key mirrors a
``charter serve`` flag or a section below; unknown keys are errors (a typo must not silently
switch a safeguard off)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from charter.core.errors import InputError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)  # gateway processes on this port (remote upstreams; each loads a local model)
    database: str = "sqlite:///charter-gateway.db"
    durability: Literal["normal", "full"] = "normal"
    max_body_bytes: int = Field(1 << 20, ge=1024)
    # Signs checkpoints and receipts; created 0600 on first start. Default: beside a SQLite database
    # file (DB.runtime-key.pem), never a fixed name in the working directory; other databases must name it.
    runtime_key: str | None = None
    receipts: bool = True
    checkpoint_seconds: float = Field(30.0, gt=0)
    poll_seconds: float = Field(0.25, gt=0, le=1.0)  # kill-switch propagation between processes
    retention_days: float | None = Field(None, gt=0)
    witness_file: str | None = None  # append each signed checkpoint here (JSON lines, 0600), off the database's disk
    witness_url: str | None = None  # and/or POST each checkpoint (JSON) here; failures are logged and retried
    # Public keys of earlier runtime keys (after a rotation): the last checkpoint may be signed by
    # one of them, and the gateway must still verify it before chaining the next one to it.
    earlier_runtime_keys: list[str] = []
    system_prompt: str = "constitution"  # "constitution" (its summary), "none", or literal text
    log_requests: bool = True  # one structured JSON log line per request
    # Behind a TLS-terminating proxy: believe its X-Forwarded-Proto / X-Forwarded-Host (console
    # cookies get Secure, the console's Origin check uses the forwarded host). Off: never.
    trust_proxy_headers: bool = False


class UpstreamConfig(_Section):
    model: str = "embedded"  # embedded | hf:PATH | gguf:PATH | openai:URL#MODEL
    model_id: str | None = None  # the id clients send and /v1/models lists (default: derived)
    require_seal: str | None = None  # public key: refuse to serve unless the model's seal verifies
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    timeout: float = Field(120.0, gt=0)
    api_key: str | None = None  # remote upstream key (or env OPENAI_API_KEY)


class GuardConfig(_Section):
    path: str | None = None  # a guard directory from `charter guard train`; none = no classifier
    exchange_model: str | None = (
        None  # an LM stage-2 judge for escalated texts (default: the guard's trained exchange head)
    )
    stream_every: int = Field(16, ge=1)  # output chunks between streaming checks
    batching: bool = True  # concurrent requests' checks share one classifier pass
    runtime: Literal["onnx", "onnx-int8", "torch"] | None = (
        None  # how a fine-tuned guard's encoder runs (default: as trained)
    )


class ComplianceConfig(_Section):
    profiles: list[str] = []  # bundled names (none, cac-genai, cac-anthropomorphic, eu-ai-act-art50) or .toml paths
    # A random 256-bit secret (hex, 0600), created on first use. Default: beside the runtime key
    # (NAME.watermark-key). Never derived from anything published, never written in this file.
    watermark_key_file: str | None = None
    watermark_key: object = Field(None, exclude=True)  # the old inline integer key: refused below

    @field_validator("watermark_key")
    @classmethod
    def _no_inline_key(cls, v):
        if v is not None:
            raise ValueError(
                "an inline watermark key is no longer accepted (a number in a config file is neither "
                "secret nor 128 bits): delete it; the gateway creates a random key file "
                "(watermark_key_file)"
            )
        return v

    idle_minutes: float = Field(30.0, gt=0)  # a pause this long ends a session's continuous use
    distress_guard: str | None = None  # guard dir flagging distress/dependency (overrides the profile)
    handoff_webhook: str | None = None  # POSTed on every hand-off (overrides the profile)


class TripRule(_Section):
    kind: Literal["blocked_outputs", "blocked_inputs", "violation_reports"]
    threshold: int = Field(ge=1)
    window_seconds: float = Field(gt=0)
    # What a trip suspends: the served model, everything, or (counting each tenant's entries
    # separately) only the tenant whose entries reached the threshold.
    scope: Literal["model", "all", "tenant"] = "model"


class TenantConfig(_Section):
    name: str
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rate_limit_rpm: int = Field(60, ge=1)
    admin: bool = False


class GatewayConfig(_Section):
    server: ServerConfig = ServerConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    guard: GuardConfig = GuardConfig()
    compliance: ComplianceConfig = ComplianceConfig()
    constitution: str = "default"
    trip_rules: list[TripRule] = []
    tenants: list[TenantConfig] = []
    base_dir: str = "."  # relative paths resolve against the working directory

    def runtime_key_path(self) -> str:
        """The runtime key file: as configured, else beside a SQLite database file (so the key is
        the database's, not whatever a working directory happens to hold)."""
        if self.server.runtime_key:
            return self.path(self.server.runtime_key)
        from charter.audit.db import sqlite_file

        db = self.path(self.server.database)
        name = sqlite_file(db) if db.startswith("sqlite") else None
        if name is not None:
            f = Path(name)
            return str(f.with_name(f.stem + ".runtime-key.pem"))
        raise InputError(
            "server.runtime_key: name the runtime key file (the database is not a SQLite file, so there is "
            "no default place beside it)",
            source="gateway config",
        )

    def watermark_key_path(self) -> str:
        if self.compliance.watermark_key_file:
            return self.path(self.compliance.watermark_key_file)
        rt = Path(self.runtime_key_path())
        return str(rt.with_name(rt.name.removesuffix(".pem").removesuffix(".runtime-key") + ".watermark-key"))

    def path(self, p: str) -> str:
        """Resolve a relative file path (or sqlite URL) against ``base_dir`` (the working directory)."""
        if p.startswith("sqlite:///") and not p.startswith("sqlite:////"):
            rel = p[len("sqlite:///") :]
            return p if rel in ("", ":memory:") else "sqlite:///" + str((Path(self.base_dir) / rel).resolve())
        if "://" in p or Path(p).is_absolute():
            return p
        return str((Path(self.base_dir) / p).resolve())


def load_gateway_config(path: str | Path | None, **overrides) -> GatewayConfig:
    """Read gateway.toml (or defaults when None); ``overrides`` are dotted keys from CLI flags."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError("no such gateway config file", source=str(p))
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"not valid TOML: {exc}", source=str(p)) from None
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    data.setdefault("base_dir", str(Path.cwd()))
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise InputError(f"{field}: {err['msg']}", source=str(path or "gateway config")) from None
