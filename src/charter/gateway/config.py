"""``gateway.toml``: what the gateway serves, where it logs, how it guards. Every key mirrors a
``charter serve`` flag or a section below; unknown keys are errors (a typo must not silently
switch a safeguard off)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from charter.errors import InputError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)  # gateway processes on this port (remote upstreams; each loads a local model)
    database: str = "sqlite:///charter-gateway.db"
    durability: Literal["normal", "full"] = "normal"
    max_body_bytes: int = Field(1 << 20, ge=1024)
    runtime_key: str = "charter-runtime-key.pem"  # created on first start when missing (unencrypted, mode 600)
    receipts: bool = True
    checkpoint_seconds: float = Field(30.0, gt=0)
    poll_seconds: float = Field(0.25, gt=0, le=1.0)  # kill-switch propagation between processes
    retention_days: float | None = Field(None, gt=0)
    system_prompt: str = "constitution"  # "constitution" (its summary), "none", or literal text
    log_requests: bool = True  # one structured JSON log line per request


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
    exchange_model: str | None = None  # stage-2 judge for escalated texts
    stream_every: int = Field(16, ge=1)  # output chunks between streaming checks


class ComplianceConfig(_Section):
    profiles: list[str] = []  # bundled names (none, cac-genai, cac-anthropomorphic, eu-ai-act-art50) or .toml paths
    watermark_key: int | None = None  # green-list hashing key (default: derived from the runtime key)
    idle_minutes: float = Field(30.0, gt=0)  # a pause this long ends a session's continuous use
    distress_guard: str | None = None  # guard dir flagging distress/dependency (overrides the profile)
    handoff_webhook: str | None = None  # POSTed on every hand-off (overrides the profile)


class TripRule(_Section):
    kind: Literal["blocked_outputs", "blocked_inputs", "violation_reports"]
    threshold: int = Field(ge=1)
    window_seconds: float = Field(gt=0)
    scope: Literal["model", "all"] = "model"


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

    def path(self, p: str) -> str:
        """Resolve a relative file path (or sqlite URL) against ``base_dir`` (the working directory)."""
        if p.startswith("sqlite:///") and not p.startswith("sqlite:////"):
            rel = p[len("sqlite:///"):]
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
