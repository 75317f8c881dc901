"""``charter check``: does a candidate release need re-filing or review against the baseline?

Both releases are sealed models; everything compared comes from their provenance statements
(verified when a public key is given) and their signed ``config.json``. Each rule yields findings
with an action from the rules file — ``refile`` (a regulator must be told: base model or
architecture changed, training data changed beyond a threshold, hard constraints changed),
``review`` (a person signs off: guard thresholds loosened, constitution drift, routing turned off,
evaluation regressions) or ``ignore``. The CLI exits 1 when any finding is refile or review.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from charter.constitution import diff_constitutions, parse_constitution
from charter.core.errors import InputError
from charter.core.tomlinput import load_toml_model
from charter.governance.data_change import data_change
from charter.governance.sealed import SealedModel, base_identity, load_sealed

Action = Literal["refile", "review", "ignore"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Action


class DataRule(_Rule):
    action: Action = "refile"
    # Fraction of training records (by content hash) added or removed, across every stage, above
    # which the change needs re-filing; any smaller change is a review.
    max_changed_fraction: float = Field(0.2, ge=0.0, le=1.0)
    review_any_change: bool = True


class ConstitutionRule(_Rule):
    action: Action = "review"
    max_drift: float = Field(0.0, ge=0.0, le=1.0)  # drift score above which a change needs review
    semantic: bool = True  # use the embedding drift score; off: any digest change counts


class GuardRule(_Rule):
    action: Action = "review"
    tolerance: float = Field(1e-6, ge=0.0)  # threshold increases smaller than this are noise
    # A retrained head's thresholds are on another scale; its validation figures are compared instead.
    max_tpr_drop: float = Field(0.02, ge=0.0, le=1.0)
    max_fpr_rise: float = Field(0.02, ge=0.0, le=1.0)


class EvalRule(_Rule):
    action: Action = "review"
    max_asr_increase: float = Field(0.05, ge=0.0, le=1.0)
    max_over_refusal_increase: float = Field(0.05, ge=0.0, le=1.0)


class Rules(BaseModel):
    """The rules file (TOML); every section optional, every field with the default shown in docs."""

    model_config = ConfigDict(extra="forbid")
    base_model: _Rule = _Rule(action="refile")
    architecture: _Rule = _Rule(action="refile")
    training_data: DataRule = DataRule()
    hard_constraints: _Rule = _Rule(action="refile")
    constitution: ConstitutionRule = ConstitutionRule()
    guard: GuardRule = GuardRule()
    routing: _Rule = _Rule(action="review")
    evaluations: EvalRule = EvalRule()


def load_rules(path: str | Path | None) -> Rules:
    return load_toml_model(path, Rules, "rules")


@dataclass
class Finding:
    rule: str
    action: str
    message: str
    baseline: object = None
    candidate: object = None


@dataclass
class CheckConfig:
    """Arguments of ``charter check`` (one field per CLI flag)."""

    baseline: str
    candidate: str
    rules: str | None = None
    public_key: str | None = None
    allow_unrelated: bool = False


@dataclass
class CheckResult:
    baseline: dict
    candidate: dict
    findings: list[Finding] = field(default_factory=list)
    measurements: dict = field(default_factory=dict)

    @property
    def needs_refiling(self) -> bool:
        return any(f.action == "refile" for f in self.findings)

    @property
    def needs_review(self) -> bool:
        return any(f.action == "review" for f in self.findings)

    @property
    def verdict(self) -> str:
        return "refile" if self.needs_refiling else "review" if self.needs_review else "pass"

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict != "pass" else 0

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "findings": [asdict(f) for f in self.findings],
            "measurements": self.measurements,
        }

    def lines(self) -> list[str]:
        out = [
            f"baseline  {self.baseline['model_dir']} (statement sha256:{self.baseline['statement_digest'][:16]}…)",
            f"candidate {self.candidate['model_dir']} (statement sha256:{self.candidate['statement_digest'][:16]}…)",
        ]
        shown = [f for f in self.findings if f.action != "ignore"]
        for f in sorted(shown, key=lambda f: (f.action != "refile", f.rule)):
            out.append(f"  {f.action.upper():6} [{f.rule}] {f.message}")
        ignored = len(self.findings) - len(shown)
        if ignored:
            out.append(f"  ({ignored} finding(s) ignored by the rules)")
        out.append(
            {
                "refile": "verdict: RE-FILING NEEDED",
                "review": "verdict: REVIEW NEEDED",
                "pass": "verdict: no change needs re-filing or review",
            }[self.verdict]
        )
        return out


def _identity(m: SealedModel) -> dict:
    c = m.constitution
    return {
        "model_dir": m.head.model_dir,
        "statement_digest": m.head.statement_digest,
        "root_digest": m.head.root_digest,
        "constitution": f"{c['name']} {c['version']}",
        "base_model": base_identity(m.base_model),
        "verified": m.head.verified,
    }


class ReleaseCheck:
    def __init__(self, config: CheckConfig, *, drift_auditor=None):
        self.config = config
        self.rules = load_rules(config.rules)
        self._auditor = drift_auditor

    def run(self) -> CheckResult:
        c = self.config
        base = load_sealed(c.baseline, c.public_key)
        cand = load_sealed(c.candidate, c.public_key)
        if not c.allow_unrelated:
            _require_related(base, cand)
        result = CheckResult(_identity(base), _identity(cand))
        for name, m in (("baseline", base), ("candidate", cand)):
            if m.truncated:
                self._add(
                    result,
                    "lineage",
                    "review",
                    f"{name} lineage incomplete: {m.truncated}; the base model and the "
                    "earlier stages' data cannot be compared",
                )
        for rule in (
            self._base_model,
            self._architecture,
            self._training_data,
            self._constitution,
            self._guard,
            self._routing,
            self._evaluations,
        ):
            rule(base, cand, result)
        return result

    def _add(self, result: CheckResult, rule: str, action: str, message: str, baseline=None, candidate=None) -> None:
        result.findings.append(Finding(rule, action, message, baseline, candidate))

    # -- rules ----------------------------------------------------------------------------------------
    def _base_model(self, base: SealedModel, cand: SealedModel, result: CheckResult) -> None:
        if base.truncated or cand.truncated:
            return  # unknown, not changed: the lineage finding says why
        a, b = base_identity(base.base_model), base_identity(cand.base_model)
        if a != b:
            self._add(result, "base_model", self.rules.base_model.action, f"base model changed: {a} -> {b}", a, b)

    def _architecture(self, base: SealedModel, cand: SealedModel, result: CheckResult) -> None:
        a, b = base.architecture, cand.architecture
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if changed:
            detail = ", ".join(f"{k} {a.get(k)} -> {b.get(k)}" for k in changed)
            self._add(
                result,
                "architecture",
                self.rules.architecture.action,
                f"architecture changed: {detail}",
                {k: a.get(k) for k in changed},
                {k: b.get(k) for k in changed},
            )

    def _training_data(self, base: SealedModel, cand: SealedModel, result: CheckResult) -> None:
        rule = self.rules.training_data
        fraction, detail = data_change(base.datasets(), cand.datasets())
        result.measurements["training_data"] = {"changed_fraction": fraction, "datasets": detail}
        if fraction > rule.max_changed_fraction:
            self._add(
                result,
                "training_data",
                rule.action,
                f"training data changed by {fraction:.1%} of records (threshold {rule.max_changed_fraction:.0%}): "
                + "; ".join(d["summary"] for d in detail if d["changed_fraction"] > 0),
                None,
                fraction,
            )
        elif fraction > 0 and rule.review_any_change:
            self._add(
                result,
                "training_data",
                "review" if rule.action != "ignore" else "ignore",
                f"training data changed by {fraction:.1%} of records (below the re-filing threshold "
                f"{rule.max_changed_fraction:.0%})",
                None,
                fraction,
            )

    def _constitution(self, base: SealedModel, cand: SealedModel, result: CheckResult) -> None:
        ca, cb = base.constitution, cand.constitution
        if ca["digest"] == cb["digest"]:
            return
        old = parse_constitution(ca["text"], source=f"{base.head.model_dir} (sealed constitution)")
        new = parse_constitution(cb["text"], source=f"{cand.head.model_dir} (sealed constitution)")
        rule = self.rules.constitution
        d = diff_constitutions(old, new)
        score, hard, hard_minor = self._hard_constraint_changes(old, new, d) if rule.semantic else _digest_only(d)
        if hard:
            self._add(
                result,
                "hard_constraints",
                self.rules.hard_constraints.action,
                "hard constraints changed: " + "; ".join(hard),
                [p.id for p in old.hard_constraints],
                [p.id for p in new.hard_constraints],
            )
        result.measurements["constitution_drift"] = score
        other = _other_constitution_changes(d, hard_minor)
        # max_drift 0 means any change to the sealed text is reviewed, scored or not.
        if score > rule.max_drift or (rule.max_drift == 0.0 and (other or score > 0)):
            self._add(
                result,
                "constitution",
                rule.action,
                f"constitution {ca['name']} {ca['version']} -> {cb['name']} {cb['version']}: drift score {score:.3f} "
                f"(threshold {rule.max_drift}); {len(d.added)} added, {len(d.removed)} removed, "
                f"{len(d.changed)} changed" + ("; " + "; ".join(other) if other else ""),
                ca["digest"],
                cb["digest"],
            )

    def _hard_constraint_changes(self, old, new, d) -> tuple[float, list[str], list[str]]:
        """The embedding drift score, the hard-constraint changes that matter (added, relaxed:
        demoted, removed or made a default, or reworded) and the hard-constraint edits that keep
        their meaning."""
        from charter.governance.drift import DriftAuditor

        self._auditor = self._auditor or DriftAuditor()
        report = self._auditor.compare(old, new)
        hard = [
            f"{p.label}: {', '.join(k.replace('_', ' ') for k in p.kinds)}"
            for p in report.principles
            if any(k.startswith("hard_constraint") for k in p.kinds)
        ]
        # Edits to a hard constraint that keep its meaning: a person should look, no filing needed.
        hard_minor = [
            f"{p.label}: {', '.join(k.replace('_', ' ') for k in p.kinds)}"
            for p in report.principles
            if p.kinds
            and not any(k.startswith("hard_constraint") for k in p.kinds)
            and any(x.is_hard_constraint for x in old.principles + new.principles if x.id in (p.old_id, p.new_id))
        ]
        return report.score, hard, hard_minor

    def _guard(self, base: SealedModel, cand: SealedModel, result: CheckResult) -> None:
        rule = self.rules.guard
        a, b = base.predicate.get("guard"), cand.predicate.get("guard")
        if not a:
            return  # no sealed guard to loosen
        if not b:
            self._add(
                result,
                "guard",
                rule.action,
                "the baseline was sealed with a guard and the candidate without one",
                a["sha256"],
                None,
            )
            return
        loosened, retrained = [], []
        for side, sa in a["sides"].items():
            sb = b["sides"].get(side)
            if sb is None:
                loosened.append(f"{side} classifier removed")
                continue
            for stage, xa, xb in (("stage 1", sa, sb), ("probe", sa.get("probe"), sb.get("probe"))):
                if xa is None:
                    continue
                if xb is None:
                    loosened.append(f"{side} {stage} removed")
                    continue
                if xa.get("head_sha256") and xa.get("head_sha256") == xb.get("head_sha256"):
                    # Same classifier: its thresholds are on one scale, so a higher one blocks less.
                    for key in ("block_threshold", "escalation_threshold"):
                        if xb.get(key) is not None and xa.get(key) is not None and xb[key] > xa[key] + rule.tolerance:
                            loosened.append(f"{side} {stage} {key.replace('_', ' ')} {xa[key]:.4f} -> {xb[key]:.4f}")
                else:
                    retrained.append(f"{side} {stage}")
                    va, vb = xa.get("validation") or {}, xb.get("validation") or {}
                    if (
                        va.get("tpr") is not None
                        and vb.get("tpr") is not None
                        and va["tpr"] - vb["tpr"] > rule.max_tpr_drop
                    ):
                        loosened.append(f"{side} {stage} retrained: validation TPR {va['tpr']:.3f} -> {vb['tpr']:.3f}")
                    if (
                        va.get("fpr") is not None
                        and vb.get("fpr") is not None
                        and vb["fpr"] - va["fpr"] > rule.max_fpr_rise
                    ):
                        loosened.append(f"{side} {stage} retrained: validation FPR {va['fpr']:.3f} -> {vb['fpr']:.3f}")
        for key in ("target_fpr", "escalation_fpr"):
            if a.get(key) is not None and b.get(key) is not None and b[key] > a[key] + rule.tolerance:
                loosened.append(f"{key.replace('_', ' ')} {a[key]} -> {b[key]}")
        dropped = sorted(set(a.get("categories") or []) - set(b.get("categories") or []))
        if dropped:
            loosened.append("categories no longer covered: " + ", ".join(dropped))
        result.measurements["guard"] = {"retrained": retrained, "changed": a["sha256"] != b["sha256"]}
        if loosened:
            self._add(result, "guard", rule.action, "guard loosened: " + "; ".join(loosened), a["sha256"], b["sha256"])

    def _routing(self, base: SealedModel, cand: SealedModel, result: CheckResult) -> None:
        def routed(m: SealedModel) -> bool | None:
            t = m.predicate.get("training") or {}
            return (t.get("routing") or {}).get("enabled") if t.get("routing") else None

        a, b = routed(base), routed(cand)
        if a and b is False:
            self._add(
                result,
                "routing",
                self.rules.routing.action,
                "depth-selective routing was on for the baseline and is off for the candidate",
                a,
                b,
            )
        elif a and b is None:
            self._add(
                result,
                "routing",
                self.rules.routing.action,
                "the baseline's seal records its routing and the candidate's records no training",
                a,
                b,
            )

    def _evaluations(self, base: SealedModel, cand: SealedModel, result: CheckResult) -> None:
        rule = self.rules.evaluations
        a, b = _eval_rates(base), _eval_rates(cand)
        result.measurements["evaluations"] = {"baseline": a, "candidate": b}
        limits = {"asr": rule.max_asr_increase, "over_refusal": rule.max_over_refusal_increase}
        for key in sorted(set(a) & set(b)):
            metric = key.split(":")[1]
            limit = limits["asr" if metric.startswith("asr") else "over_refusal"]
            if b[key] - a[key] > limit:
                self._add(
                    result,
                    "evaluations",
                    rule.action,
                    f"{key} rose {a[key]:.3f} -> {b[key]:.3f} (allowed +{limit})",
                    a[key],
                    b[key],
                )
        missing = sorted(set(a) - set(b))
        if missing:
            self._add(
                result,
                "evaluations",
                rule.action,
                "the candidate's seal has no evaluation for " + ", ".join(missing) + " (the baseline's has)",
                None,
                None,
            )


def _digest_only(d) -> tuple[float, list[str], list[str]]:
    """Without the semantic score: any change scores 1, and every hard-constraint change counts."""
    hard = (
        [f"{p}: hard constraint added" for p in d.hard_constraints_added]
        + [f"{p}: hard constraint removed or relaxed" for p in d.hard_constraints_removed]
        + [f"{p}: hard constraint changed" for p in d.hard_constraints_changed]
    )
    return 1.0, hard, []


def _other_constitution_changes(d, hard_minor: list[str]) -> list[str]:
    """The changes besides principles' that the constitution finding lists (categories, tier
    order, metadata, hard constraints edited without a change of meaning)."""
    other = []
    if d.categories_removed or d.categories_changed:
        other.append("content categories removed/changed: " + ", ".join(d.categories_removed + d.categories_changed))
    if d.categories_added:
        other.append("content categories added: " + ", ".join(d.categories_added))
    if d.tiers_changed:
        other.append("tier order changed")
    if d.metadata_changed:
        other.append("metadata changed: " + ", ".join(d.metadata_changed))
    if hard_minor:
        other.append("hard constraints edited without a change of meaning: " + "; ".join(hard_minor))
    return other


def _eval_rates(m: SealedModel) -> dict[str, float]:
    """suite:metric:judge -> rate, for the evaluations sealed with the model itself."""
    out = {}
    for e in m.predicate.get("evaluations", []):
        for metric in ("asr_refusal", "asr_judge", "over_refusal"):
            r = (e.get("figures") or {}).get(metric)
            if isinstance(r, dict) and r.get("rate") is not None:
                # Judged rates are only comparable under the same judge.
                source = (e.get("judge") or "?") if metric == "asr_judge" else "refusal-detector"
                out[f"{e.get('suite')}:{metric}:{source}"] = r["rate"]
    return out


def _require_related(a: SealedModel, b: SealedModel) -> None:
    """A check compares two releases of one model: same constitution name or same base model."""
    if a.constitution["name"] == b.constitution["name"]:
        return
    if base_identity(a.base_model) and base_identity(a.base_model) == base_identity(b.base_model):
        return
    if {s.statement_digest for s in a.chain} & {s.statement_digest for s in b.chain}:
        return
    raise InputError(
        f"the two manifests describe unrelated models (constitution {a.constitution['name']!r} vs "
        f"{b.constitution['name']!r}, base model {base_identity(a.base_model)} vs {base_identity(b.base_model)}, "
        "no shared seal); pass --allow-unrelated to compare them anyway",
        source=b.head.model_dir,
    )
