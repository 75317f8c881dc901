"""An assessment's result as typed records: the figures and where they came from, each check's
share, interval and verdict, the conclusion, and the whole (``assessment.json`` is ``to_dict()``).

Deciding a verdict lives here too, apart from sampling and generation, so the rules read in one
place: FAIL when the point estimate misses the threshold, INSUFFICIENT when the sample is smaller
than required, FAIL with ``require_interval`` when the 95% interval does not clear it, else PASS.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from charter.core.stats import rate, wilson
from charter.governance.assess.config import (
    CHECKS,
    FAIL,
    FIGURES,
    INCOMPLETE,
    INSUFFICIENT,
    NOT_ASSESSED,
    PASS,
    SPEC,
)

_NOT_GIVEN = {
    "corpus": "no training data given (--corpus) and the model is not a sealed hf: model",
    "generated": "no test question bank given (--questions)",
    "refusal": "no should-refuse bank given (--refuse-bank)",
    "non_refusal": "no should-not-refuse bank given (--answer-bank)",
}


def pct(x: float | None, digits: int = 1) -> str:
    """A share as a percentage ("96.0%"; "–" when there is none)."""
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def threshold_pct(x: float) -> str:
    """A threshold as a percentage, like the shares ("96.0%"), with more digits only where one
    would round it (0.9575 -> "95.75%", never a misleading "95.8%")."""
    text = f"{100 * x:.1f}"
    if abs(float(text) - 100 * x) > 1e-9:
        text = f"{100 * x:.6f}".rstrip("0").rstrip(".")
    return text + "%"


def threshold_text(bound: str, threshold: float | None) -> str:
    """ "≥ 96.0%" / "≤ 5.0%": the report's, the chart's and the CLI's form of a threshold."""
    if threshold is None:
        return "–"
    return ("≥ " if bound == "min" else "≤ ") + threshold_pct(threshold)


@dataclass(frozen=True)
class Figure:
    """One sample size or threshold: the value used, where it came from (a flag or the profiles),
    and the profile's own value when a flag overrides it."""

    value: float | int | None
    source: str | None
    profile_value: float | int | None
    profile_source: str | None
    weaker_than_profile: bool = False

    def describe_override(self, key: str) -> str:
        return f"{key} {self.value} (profile {self.profile_source}: {self.profile_value})"

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "source": self.source,
            "profile_value": self.profile_value,
            "profile_source": self.profile_source,
        }


def resolve_figures(profile, config) -> dict[str, Figure]:
    """Every figure of ``FIGURES``: the flag when given (marked weaker when it relaxes the
    profile), else the composed profiles' value."""
    out = {}
    for key in FIGURES:
        pv = profile.get(f"assessment.{key}")
        psrc = " + ".join(profile.sources[f"assessment.{key}"]) or None
        flag = getattr(config, key)
        if flag is None:
            out[key] = Figure(pv, psrc, pv, psrc)
            continue
        weaker = pv is not None and (flag > pv if key == "max_over_refused" else flag < pv)
        out[key] = Figure(flag, "--" + key.replace("_", "-"), pv, psrc, weaker)
    return out


@dataclass
class CheckResult:
    """One of the four checks. The measured fields are None for a check that was not assessed;
    ``details`` holds what a check adds (errors, filters, borderline counts, categories)."""

    id: str
    section: str
    title: str
    metric: str
    bound: str  # "min": the share must reach the threshold; "max": it must not exceed it
    verdict: str
    required_n: int | None
    threshold: float | None
    required_n_source: str | None
    threshold_source: str | None
    reasons: list[str]
    inputs: list[dict] | None = None  # [{"path", "sha256"}]
    population: int | None = None
    n: int | None = None
    k: int | None = None
    share: float | None = None
    ci95: list[float] | None = None
    interval_clears: bool | None = None
    weaker_than_profile: list[str] = field(default_factory=list)
    samples_file: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def assessed(self) -> bool:
        return self.verdict != NOT_ASSESSED

    def to_dict(self) -> dict:
        head = {k: getattr(self, k) for k in ("id", "section", "title", "metric", "bound")}
        if not self.assessed:
            return head | {
                k: getattr(self, k)
                for k in ("verdict", "required_n", "threshold", "required_n_source", "threshold_source", "reasons")
            }
        return (
            head
            | {
                k: getattr(self, k)
                for k in (
                    "inputs",
                    "population",
                    "required_n",
                    "n",
                    "k",
                    "share",
                    "ci95",
                    "threshold",
                    "interval_clears",
                    "verdict",
                    "reasons",
                    "required_n_source",
                    "threshold_source",
                    "weaker_than_profile",
                    "samples_file",
                )
            }
            | self.details
        )

    @classmethod
    def from_dict(cls, d: dict) -> CheckResult:
        known = {f.name for f in fields(cls)} - {"details"}
        return cls(**{k: v for k, v in d.items() if k in known}, details={k: v for k, v in d.items() if k not in known})


def _spec_fields(check: str) -> dict:
    spec = SPEC[check]
    return {k: spec[k] for k in ("section", "title", "metric", "bound")}


def not_assessed(check: str, figures: dict[str, Figure]) -> CheckResult:
    spec = SPEC[check]
    req, thr = figures[spec["samples"]], figures[spec["threshold"]]
    return CheckResult(
        id=check,
        **_spec_fields(check),
        verdict=NOT_ASSESSED,
        required_n=req.value,
        threshold=thr.value,
        required_n_source=req.source,
        threshold_source=thr.source,
        reasons=[_NOT_GIVEN[check]],
    )


def decide_check(
    check: str,
    outcomes: list[bool],
    figures: dict[str, Figure],
    *,
    population: int,
    inputs: list[dict],
    require_interval: bool,
    details: dict | None = None,
) -> CheckResult:
    """The share of ``outcomes`` that are True, its Wilson interval and the verdict against the
    check's required sample size and threshold."""
    spec = SPEC[check]
    req, thr = figures[spec["samples"]], figures[spec["threshold"]]
    required, threshold = req.value, thr.value
    n, k = len(outcomes), sum(outcomes)
    share = k / n if n else None
    lo, hi = wilson(k, n)
    if spec["bound"] == "min":
        point_ok = share is not None and share >= threshold
        interval_ok = n > 0 and lo >= threshold
    else:
        point_ok = share is not None and share <= threshold
        interval_ok = n > 0 and hi <= threshold
    if share is not None and not point_ok:
        verdict = FAIL
    elif n < required or n == 0:
        verdict = INSUFFICIENT
    elif require_interval and not interval_ok:
        verdict = FAIL
    else:
        verdict = PASS
    return CheckResult(
        id=check,
        **_spec_fields(check),
        verdict=verdict,
        required_n=required,
        threshold=threshold,
        required_n_source=req.source,
        threshold_source=thr.source,
        reasons=_reasons(
            spec["bound"], n, required, population, share, point_ok, interval_ok, (lo, hi), threshold, require_interval
        ),
        inputs=inputs,
        population=population,
        n=n,
        k=k,
        share=share,
        ci95=[lo, hi],
        interval_clears=interval_ok,
        weaker_than_profile=[
            figures[key].describe_override(key)
            for key in (spec["samples"], spec["threshold"])
            if figures[key].weaker_than_profile
        ],
        samples_file=f"samples_{check}.jsonl",
        details=dict(details or {}),
    )


def _reasons(bound, n, required, population, share, point_ok, interval_ok, ci, threshold, require_interval):
    """Why a check did not simply pass, in the report's words."""
    reasons = []
    if n < required:
        reasons.append(
            f"insufficient sample: {n} < required {required}"
            + (f" (the input holds {population})" if population < required else "")
        )
    if share is not None and not point_ok:
        reasons.append(
            f"share {pct(share, 2)} {'below' if bound == 'min' else 'above'} the threshold {threshold_pct(threshold)}"
        )
    if share is not None and point_ok and not interval_ok:
        reasons.append(
            f"95% interval [{pct(ci[0], 2)}, {pct(ci[1], 2)}] does not clear the threshold {threshold_pct(threshold)}"
            + ("" if require_interval else " (point estimate does)")
        )
    return reasons


def share_of(outcomes: list[bool]) -> dict:
    """n, k, share and 95% interval of a sub-population (a category)."""
    r = rate(sum(outcomes), len(outcomes))
    return {"n": r["n"], "k": r["k"], "share": r["rate"], "ci95": r["ci95"]}


@dataclass
class Conclusion:
    verdict: str
    failed: list[str]
    insufficient: list[str]
    not_assessed: list[str]
    weaker_than_profile: list[str]

    @classmethod
    def of(cls, checks: list[CheckResult]) -> Conclusion:
        """PASS only when every check passes; FAIL when any fails; else INCOMPLETE."""
        verdicts = [ch.verdict for ch in checks]
        overall = FAIL if FAIL in verdicts else PASS if all(v == PASS for v in verdicts) else INCOMPLETE
        return cls(
            verdict=overall,
            failed=[ch.id for ch in checks if ch.verdict == FAIL],
            insufficient=[ch.id for ch in checks if ch.verdict == INSUFFICIENT],
            not_assessed=[ch.id for ch in checks if ch.verdict == NOT_ASSESSED],
            weaker_than_profile=list(dict.fromkeys(w for ch in checks for w in ch.weaker_than_profile)),
        )

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class AssessmentResult:
    """What ``assessment.json`` holds (``to_dict``) and what the report and the documents read."""

    standard: str
    charter_version: str
    created: str
    model: dict  # spec, info, weights_digest, seal
    guard: dict | None  # path, sha256, format, embedder, constitution, sides
    profiles: list[str]
    figures: dict[str, Figure]
    figures_reference: str | None
    caveat: str
    corpus_from_sealed_model: str | None
    arguments: dict
    checks: list[CheckResult]
    conclusion: Conclusion
    chart: str | None = None  # the PNG, once drawn (not part of assessment.json)
    task: str = "assess"

    def check(self, check_id: str) -> CheckResult:
        return next(ch for ch in self.checks if ch.id == check_id)

    def to_dict(self) -> dict:
        out = {
            "task": self.task,
            "standard": self.standard,
            "charter_version": self.charter_version,
            "created": self.created,
            "model": self.model,
            "guard": self.guard,
            "profiles": self.profiles,
            "figures": {k: f.to_dict() for k, f in self.figures.items()},
            "figures_reference": self.figures_reference,
            "caveat": self.caveat,
            "corpus_from_sealed_model": self.corpus_from_sealed_model,
            "arguments": self.arguments,
            "checks": [ch.to_dict() for ch in self.checks],
            "conclusion": self.conclusion.to_dict(),
        }
        return out | ({"chart": self.chart} if self.chart is not None else {})

    @classmethod
    def from_dict(cls, d: dict) -> AssessmentResult:
        """Read back ``assessment.json`` (KeyError/TypeError on a file that is not one)."""
        return cls(
            task=d["task"],
            standard=d["standard"],
            charter_version=d["charter_version"],
            created=d["created"],
            model=d["model"],
            guard=d["guard"],
            profiles=list(d["profiles"]),
            figures={k: Figure(**v) for k, v in d["figures"].items()},
            figures_reference=d.get("figures_reference"),
            caveat=d["caveat"],
            corpus_from_sealed_model=d.get("corpus_from_sealed_model"),
            arguments=d["arguments"],
            checks=[CheckResult.from_dict(ch) for ch in d["checks"]],
            conclusion=Conclusion(**d["conclusion"]),
            chart=d.get("chart"),
        )


def all_checks(results: dict[str, CheckResult], figures: dict[str, Figure]) -> list[CheckResult]:
    """The four checks in order, those without input as NOT ASSESSED."""
    return [results[c] if c in results else not_assessed(c, figures) for c in CHECKS]
