"""Compliance profiles: the procedural mechanics a regulatory regime asks of a deployment
(disclosures, labels, watermarks, retention, incident rules, dependency safeguards) as TOML.
Charter ships the mechanics only; content policy stays the deployer's constitution.

Profiles compose: a deployment under two regimes gets the stricter setting of each (a shorter
disclosure interval, a longer retention floor, a label if either asks, every notice text), and
``charter profiles show`` names the profile each effective setting came from.

A profile may also carry the sample sizes and pass thresholds of a pre-launch safety assessment
(``[assessment]``, read by ``charter assess``); composed, the larger sample, the higher minimum and
the lower maximum win.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from charter.core.errors import InputError
from charter.core.tomlinput import load_toml_model, parse_toml_model

BUNDLED = ("none", "cac-genai", "cac-anthropomorphic", "eu-ai-act-art50")


class _S(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Disclosure(_S):
    at_session_start: bool | None = None
    every_minutes: float | None = Field(None, gt=0)
    text: str | None = None


class Label(_S):
    header: bool | None = None  # X-Charter-AI-Generated header
    metadata: bool | None = None  # `charter.label` in the body / final chunk
    visible: Literal["none", "prefix", "suffix"] | None = None
    visible_text: str | None = None


class Watermark(_S):
    enabled: bool | None = None
    method: Literal["kirchenbauer", "synthid"] | None = None
    greenlist_ratio: float | None = Field(None, gt=0, lt=1)
    bias: float | None = Field(None, gt=0)


class Retention(_S):
    min_days: float | None = Field(None, gt=0)


class Rule(_S):
    threshold: int = Field(ge=1)
    window_seconds: float = Field(gt=0)


class Incidents(_S):
    blocked_outputs: Rule | None = None
    blocked_inputs: Rule | None = None
    violation_reports: Rule | None = None


class Dependency(_S):
    enabled: bool | None = None
    max_continuous_minutes: float | None = Field(None, gt=0)
    classifier: str | None = None  # a guard directory trained on distress/dependency categories
    handoff_text: str | None = None
    webhook: str | None = None


class Assessment(_S):
    """Sample sizes and pass thresholds for ``charter assess`` (shares are fractions in [0, 1])."""

    corpus_samples: int | None = Field(None, ge=1)  # training records sampled and judged
    corpus_min_qualified: float | None = Field(None, ge=0, le=1)
    answer_samples: int | None = Field(None, ge=1)  # answers to the test question bank
    answer_min_qualified: float | None = Field(None, ge=0, le=1)
    refusal_samples: int | None = Field(None, ge=1)  # per refusal bank (should-refuse, should-not-refuse)
    min_refused: float | None = Field(None, ge=0, le=1)
    max_over_refused: float | None = Field(None, ge=0, le=1)
    source: str | None = None  # where the figures come from


class Profile(_S):
    name: str
    description: str = ""
    references: list[str] = []
    disclosure: Disclosure = Disclosure()
    label: Label = Label()
    watermark: Watermark = Watermark()
    retention: Retention = Retention()
    incidents: Incidents = Incidents()
    dependency: Dependency = Dependency()
    assessment: Assessment = Assessment()


# Defaults when no profile sets a field (the "none" regime).
DEFAULTS = {
    "disclosure.at_session_start": False,
    "disclosure.every_minutes": None,
    "disclosure.text": None,
    "label.header": False,
    "label.metadata": False,
    "label.visible": "none",
    "label.visible_text": "[AI-generated]",
    "watermark.enabled": False,
    "watermark.method": "kirchenbauer",
    "watermark.greenlist_ratio": 0.25,
    "watermark.bias": 2.0,
    "retention.min_days": None,
    "incidents.blocked_outputs": None,
    "incidents.blocked_inputs": None,
    "incidents.violation_reports": None,
    "dependency.enabled": False,
    "dependency.max_continuous_minutes": None,
    "dependency.classifier": None,
    "dependency.handoff_text": "I'd like to connect you with a person who can help.",
    "dependency.webhook": None,
    # No assessment figures unless a profile sets them (charter assess then asks for flags).
    **{f"assessment.{f}": None for f in Assessment.model_fields},
}
SECTIONS = tuple(f for f in Profile.model_fields if f not in ("name", "description", "references"))

_VISIBLE_RANK = {"none": 0, "suffix": 1, "prefix": 2}


def _stricter(key: str, a, b):
    """The stricter of two set values of one field."""
    if isinstance(a, bool):
        return a or b
    if key in ("disclosure.every_minutes", "dependency.max_continuous_minutes"):
        return min(a, b)
    if key in ("retention.min_days", "watermark.bias"):
        return max(a, b)
    if key.startswith("assessment."):  # a larger sample, a higher minimum share, a lower maximum
        if key == "assessment.source":
            return a if b in a else f"{a}; {b}"
        return min(a, b) if key == "assessment.max_over_refused" else max(a, b)
    if key == "label.visible":
        return a if _VISIBLE_RANK[a] >= _VISIBLE_RANK[b] else b
    if key.startswith("incidents."):  # fewer events in a longer window trips sooner
        return Rule(threshold=min(a.threshold, b.threshold), window_seconds=max(a.window_seconds, b.window_seconds))
    if key in ("disclosure.text", "dependency.handoff_text", "label.visible_text"):
        return a if b in a else f"{a} {b}"  # both regimes' notices are shown
    return a  # method, green-list ratio, classifier, webhook: the first profile that names one


class EffectiveProfile:
    """The composed settings, and for each the profile(s) it came from."""

    def __init__(self, profiles: list[Profile], overrides: dict[str, tuple[object, str]] | None = None):
        self.profiles = profiles
        self.values: dict = dict(DEFAULTS)
        self.sources: dict[str, list[str]] = {k: [] for k in DEFAULTS}
        for p in profiles:
            for section in SECTIONS:
                for fname, value in getattr(p, section).__dict__.items():
                    if value is None:
                        continue
                    key = f"{section}.{fname}"
                    if not self.sources[key]:
                        self.values[key] = value
                        self.sources[key] = [p.name]
                        continue
                    new = _stricter(key, self.values[key], value)
                    if new != self.values[key] or new == value:  # it changed the setting, or agrees with it
                        self.sources[key].append(p.name)
                    self.values[key] = new

        # Deployment settings (gateway.toml) replace a profile's value outright, named as their source.
        for key, (value, source) in (overrides or {}).items():
            if value is not None:
                self.values[key], self.sources[key] = value, [source]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.profiles]

    def get(self, key: str):
        return self.values[key]

    def trip_rules(self) -> list[dict]:
        rules = []
        for kind in ("blocked_outputs", "blocked_inputs", "violation_reports"):
            r = self.values[f"incidents.{kind}"]
            if r is not None:
                rules.append({"kind": kind, "threshold": r.threshold, "window_seconds": r.window_seconds})
        return rules

    def describe(self, *, local_upstream: bool | None = None) -> list[tuple[str, str, str]]:
        """(setting, value, source) rows for `charter profiles show`."""
        rows = []
        for key, value in self.values.items():
            shown = (
                f"threshold {value.threshold} in {value.window_seconds:g} s"
                if isinstance(value, Rule)
                else ("—" if value is None else str(value))
            )
            src = " + ".join(self.sources[key]) or "default"
            if key == "watermark.enabled" and value and local_upstream is False:
                shown += " (NOT APPLIED: a remote upstream's logits are not available; label only)"
            elif key == "watermark.enabled" and value:
                shown += " (local upstreams only; a remote upstream cannot be watermarked)"
            rows.append((key, shown, src))
        return rows


def load_profile(name_or_path: str) -> Profile:
    """A bundled profile by name, or a TOML file path."""
    if name_or_path in BUNDLED:
        text = resources.files("charter.policy").joinpath("bundled", f"{name_or_path}.toml").read_text(encoding="utf-8")
        source = f"bundled profile {name_or_path}"
    else:
        p = Path(name_or_path)
        if not p.is_file():
            raise InputError(
                f"unknown profile {name_or_path!r} (bundled: {', '.join(BUNDLED)}; or a .toml path)", source="profile"
            )
        return load_toml_model(p, Profile, "profile")
    return parse_toml_model(text, Profile, source=source)


def compose(names: list[str], overrides: dict[str, tuple[object, str]] | None = None) -> EffectiveProfile:
    return EffectiveProfile([load_profile(n) for n in names], overrides)
