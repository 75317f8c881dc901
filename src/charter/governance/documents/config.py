"""What a document is asked for (``DocsConfig``, one field per CLI flag), the deployer's declared
facts (``--info``), and the runtime inputs read beside the seal (gateway config, profiles, an
attached assessment), each with the digest its figures are traced to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from charter.core.digests import file_sha256
from charter.core.errors import InputError
from charter.core.tomlinput import load_toml_model

KINDS = ("model-card", "alignment", "filing")
FORMATS = ("md", "html")


class DeployerInfo(BaseModel):
    """What only the deployer can declare (``--info FILE``); everything optional."""

    model_config = ConfigDict(extra="forbid")
    model_name: str | None = None
    organisation: str | None = None
    contact: str | None = None
    license: str | None = None
    languages: list[str] = ["en"]
    base_model_hf_id: str | None = None
    intended_use: str | None = None
    out_of_scope: str | None = None
    limitations: str | None = None
    service_name: str | None = None
    service_form: str | None = None  # e.g. "API", "app", "web chat"
    users: str | None = None  # who the service is for
    filing_number: str | None = None


def load_info(path: str | Path | None) -> DeployerInfo:
    return load_toml_model(path, DeployerInfo, "info")


@dataclass
class DocsConfig:
    """Arguments of ``charter docs KIND`` (one field per CLI flag)."""

    kind: Literal["model-card", "alignment", "filing"]
    model_dir: str
    out: str
    public_key: str | None = None  # verify every seal first (recommended; else the documents say unverified)
    info: str | None = None
    gateway_config: str | None = None  # the runtime layers: guard, profiles, retention, trip rules
    profiles: tuple[str, ...] = ()  # compliance profiles when there is no gateway config
    assessment: str | None = None  # a `charter assess` output directory to summarise
    formats: tuple[str, ...] = FORMATS

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown document {self.kind!r} (one of {', '.join(KINDS)})", source="charter docs")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise InputError(f"unknown format {bad[0] if bad else ''!r} (md, html)", source="--format")


@dataclass
class Runtime:
    """The runtime layers a document describes: a gateway config (and its sha256), composed profiles."""

    gateway: Any = None  # charter.gateway.config.GatewayConfig
    gateway_sha256: str | None = None
    profile: Any = None  # charter.policy.EffectiveProfile


@dataclass
class AttachedAssessment:
    """A ``charter assess`` result summarised in a filing: its assessment.json, file and sha256."""

    result: dict
    file: str
    sha256: str


def load_runtime(config: DocsConfig) -> Runtime:
    out = Runtime()
    profiles = list(config.profiles)
    if config.gateway_config:
        from charter.gateway.config import load_gateway_config

        out.gateway = load_gateway_config(config.gateway_config)
        out.gateway_sha256 = file_sha256(config.gateway_config).split(":", 1)[1]
        profiles = profiles or list(out.gateway.compliance.profiles)
    if profiles:
        from charter.policy.profiles import compose

        out.profile = compose(profiles)
    return out


def load_assessment(directory: str | None) -> AttachedAssessment | None:
    if not directory:
        return None
    p = Path(directory) / "assessment.json"
    if not p.is_file():
        raise InputError("not an assessment directory (no assessment.json)", source=directory)
    try:
        a = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError):
        raise InputError("assessment.json is not JSON", source=str(p)) from None
    if not isinstance(a, dict) or not isinstance(a.get("checks"), list):
        raise InputError("is not a charter assess result (no checks)", source=str(p))
    return AttachedAssessment(a, str(p), file_sha256(p).split(":", 1)[1])
