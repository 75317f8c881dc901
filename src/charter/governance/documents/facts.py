"""The facts each document shows, computed from the sealed model in the order the document shows
them (so ``*.trace.json`` lists figures in reading order); the templates only lay them out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from charter.governance.documents.markdown import _table
from charter.governance.documents.sections import Sections, count_records
from charter.governance.sealed import base_description

# The embedded default model, named as the Hub knows it (the GGUF is a quantised copy of it).
EMBEDDED_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@dataclass
class ModelCardFacts:
    front_matter: str  # YAML (Hugging Face model-card metadata)
    name: str
    constitution_name: str
    constitution_version: str
    method_phrase: str
    organisation: str
    architecture: str
    languages: str
    license: str
    finetuned_from: str
    contact: str
    intended_use: str
    out_of_scope: str
    limitations: str
    constitution: str
    pipeline: str
    principle_training: str
    evaluation: str
    guard: str
    seal: str
    model_dir: str


@dataclass
class AlignmentFacts:
    name: str
    generated: str
    statement_digest: str
    organisation: str
    contact: str
    license: str
    intended_use: str
    base_model: str
    constitution: str
    principle_training: str
    profile_images: str
    pipeline: str
    evaluation: str
    guard: str
    runtime: str
    assessment: str
    seal: str


@dataclass
class FilingFacts:
    title: str
    service: str
    service_form: str
    organisation: str
    contact: str
    license: str
    users: str
    filing_number: str
    model_dir: str
    root_digest: str
    statement_digest: str
    verified: str
    constitution_name: str
    constitution_version: str
    constitution_digest: str
    profile_names: str
    basic_principle: str
    data_table: str
    examples_table: str
    labelling: str
    labels: str
    pipeline: str
    n_hard_constraints: int
    hard_constraints: str
    tier_order: str
    training_safety: str
    evaluation: str
    guard: str
    runtime: str
    assessment: str
    retention: str
    trip_rules: str
    seal: str


def model_card_facts(s: Sections) -> ModelCardFacts:
    import yaml

    m, info = s.model, s.info
    base = m.base_model or {}
    # The embedded model is a GGUF copy of this Hub model: named only when its sealed digest says embedded.
    hf_base = info.base_model_hf_id or (EMBEDDED_HF_ID if (base.get("spec") == "embedded") else None)
    meta = _card_metadata(s, hf_base)
    chain = " → ".join((st.method or "?").upper() for st in m.stages_oldest_first())
    return ModelCardFacts(
        front_matter=yaml.safe_dump(meta, sort_keys=False, allow_unicode=True),
        name=info.model_name or Path(m.head.model_dir).name,
        constitution_name=m.constitution["name"],
        constitution_version=m.constitution["version"],
        method_phrase=("with Constitutional AI (" + chain + ")") if chain else "(no training stage recorded)",
        organisation=info.organisation or "_not declared (pass --info)_",
        architecture=s.architecture(),
        languages=", ".join(info.languages),
        license=info.license or "_not declared_",
        finetuned_from=hf_base or base_description(base) or "unknown",
        contact=info.contact or "_not declared_",
        intended_use=info.intended_use or "_Not declared by the deployer (--info intended_use)._",
        out_of_scope=info.out_of_scope
        or "Uses the constitution forbids; any use without the guard and gateway the deployer documents.",
        limitations=info.limitations
        or (
            "The constitution shapes behaviour but does not guarantee it: the evaluation figures "
            "below, with their intervals, are the evidence. Small models and few training examples "
            "give wide intervals."
        ),
        constitution=s.constitution_section(full=False),
        pipeline=s.pipeline(),
        principle_training=s.principle_training(),
        evaluation=s.evaluation(),
        guard=s.guard(),
        seal=s.seal(),
        model_dir=m.head.model_dir,
    )


def _card_metadata(s: Sections, hf_base: str | None) -> dict:
    """The model card's Hugging Face metadata: library, licence, languages, tags, base model and
    a model-index of the head stage's sealed evaluation rates."""
    m, info = s.model, s.info
    metrics = _model_index_metrics(s)
    methods = [st.method for st in m.stages_oldest_first() if st.method]
    tags = ["charter", "constitutional-ai", "sealed"] + [x for x in ("sft", "dpo") if x in methods]
    if any(((d.get("lineage") or {}).get("task") == "rlaif/preferences") for d in m.datasets()):
        tags.append("rlaif")
    meta: dict = {
        "library_name": "peft" if m.is_adapter else "transformers",
        "pipeline_tag": "text-generation",
        "license": info.license or "other",
        "language": info.languages,
        "tags": tags,
    }
    if hf_base:
        meta["base_model"] = hf_base
    if metrics:
        meta["model-index"] = [
            {
                "name": info.model_name or Path(m.head.model_dir).name,
                "results": [
                    {
                        "task": {"type": "text-generation"},
                        "dataset": {"name": "Charter evaluation suites", "type": "charter-eval"},
                        "metrics": metrics,
                    }
                ],
            }
        ]
    return meta


def _model_index_metrics(s: Sections) -> list[dict]:
    """The head stage's sealed evaluation rates, as model-index metrics (each traced)."""
    m, t = s.model, s.trace
    metrics = []
    for k, e in enumerate(m.head.predicate.get("evaluations", [])):
        for metric in ("asr_refusal", "asr_judge", "over_refusal"):
            r = (e.get("figures") or {}).get(metric)
            if isinstance(r, dict) and r.get("rate") is not None:
                value = float(
                    t.fig(
                        m.head,
                        ("predicate", "evaluations", k, "figures", metric, "rate"),
                        fmt=lambda v: str(round(v, 4)),
                        label=f"model-index {e.get('suite')} {metric}",
                    )
                )
                metrics.append({"type": metric, "value": value, "name": f"{metric} ({e.get('suite')}, n={r['n']})"})
    return metrics


def alignment_facts(s: Sections) -> AlignmentFacts:
    m, info = s.model, s.info
    return AlignmentFacts(
        name=info.model_name or Path(m.head.model_dir).name,
        generated=datetime.now(UTC).strftime("%Y-%m-%d"),
        statement_digest=m.head.statement_digest,
        organisation=info.organisation or "_not declared_",
        contact=info.contact or "_not declared_",
        license=info.license or "_not declared_",
        intended_use=info.intended_use or "_not declared_",
        base_model=info.base_model_hf_id or base_description(m.base_model) or "unknown",
        constitution=s.constitution_section(full=True),
        principle_training=s.principle_training(),
        profile_images=s.profile_images(),
        pipeline=s.pipeline(),
        evaluation=s.evaluation(),
        guard=s.guard(),
        runtime=s.runtime_section(),
        assessment=s.assessment_section(),
        seal=s.seal(),
    )


def _retention(s: Sections) -> list[str]:
    g, prof, t = s.runtime.gateway, s.runtime.profile, s.trace
    out = []
    if g is not None:
        days = t.file_fig(
            "gateway retention_days",
            g.server.retention_days,
            s.gateway_config,
            s.runtime.gateway_sha256,
            fmt=lambda v: f"{v:g} days" if v else "unlimited (no purge configured)",
            source="gateway-config",
        )
        out.append(f"Gateway retention: {days}")
    if prof is not None and prof.get("retention.min_days"):
        out.append(
            f"Profile floor: at least {prof.get('retention.min_days'):g} days "
            f"({' + '.join(prof.sources['retention.min_days'])})"
        )
    return out


def _data_rows(s: Sections) -> list[list[str]]:
    t, rows = s.trace, []
    for st in s.model.stages_oldest_first():
        for k, d in enumerate(st.predicate.get("datasets", [])):
            lin = d.get("lineage") or {}
            n = count_records(d["path"], d["sha256"])
            if n is not None:
                scale = t.file_fig(f"records in {d['name']}", n, d["path"], d["sha256"])
            elif d.get("records") is not None:
                scale = t.fig(st, ("predicate", "datasets", k, "records"), label=f"records in {d['name']}")
            else:
                scale = "not recorded (file not on this machine)"
            prompts = (lin.get("arguments") or {}).get("prompts_sha256")
            digest = ("predicate", "datasets", k, "sha256")
            rows.append(
                [
                    s.stage_name(st),
                    t.fig(st, ("predicate", "datasets", k, "name"), label="dataset name"),
                    lin.get("task") or "external",
                    scale,
                    f"`{t.fig(st, digest, fmt=lambda v: v[:16] + '…', label='dataset digest')}`",
                    f"`{str(prompts)[:23]}…`" if prompts else "—",
                ]
            )
    return rows


def _examples_table(s: Sections) -> str:
    t = s.trace
    stage_cols = [
        st
        for st in s.model.stages_oldest_first()
        if ((st.predicate.get("training") or {}).get("profiles") or {}).get("principles")
    ]
    pids = list(dict.fromkeys(pid for st in stage_cols for pid in st.predicate["training"]["profiles"]["principles"]))
    rows = [
        [f"`{pid}`"]
        + [
            t.fig(
                st,
                ("predicate", "training", "profiles", "principles", pid, "examples"),
                label=f"{pid} examples ({st.method})",
            )
            if pid in st.predicate["training"]["profiles"]["principles"]
            else "—"
            for st in stage_cols
        ]
        for pid in pids
    ]
    return _table(["principle"] + [s.stage_name(st) for st in stage_cols], rows) if rows else "_none recorded_"


def filing_facts(s: Sections) -> FilingFacts:
    m, info, t, c = s.model, s.info, s.trace, s.constitution
    prof = s.runtime.profile
    retention = _retention(s)
    data_rows = _data_rows(s)
    examples_table = _examples_table(s)
    profile_names = ", ".join(prof.names) if prof is not None else "none given"
    head = ("predicate", "constitution")
    return FilingFacts(
        title=info.service_name or info.model_name or Path(m.head.model_dir).name,
        service=info.service_name or "_not declared_",
        service_form=info.service_form or "form not declared",
        organisation=info.organisation or "_not declared_",
        contact=info.contact or "_not declared_",
        license=info.license or "_not declared_",
        users=info.users or "_not declared_",
        filing_number=info.filing_number or "_not yet filed_",
        model_dir=m.head.model_dir,
        root_digest=m.head.root_digest[:16],
        statement_digest=m.head.statement_digest,
        verified="signatures verified" if m.head.verified else "not verified in this run",
        constitution_name=t.fig(m.head, head + ("name",), label="constitution name"),
        constitution_version=t.fig(m.head, head + ("version",), label="constitution version"),
        constitution_digest=t.fig(m.head, head + ("digest",), fmt=lambda v: v[:23] + "…", label="constitution digest"),
        profile_names=profile_names,
        basic_principle=s.basic_principle(),
        data_table=(
            _table(["stage", "dataset", "produced by", "records", "sha256", "source prompts sha256"], data_rows)
            if data_rows
            else "_No datasets recorded in the seal._"
        ),
        examples_table=examples_table,
        labelling=s.labelling(),
        labels=s.labels(),
        pipeline=s.pipeline(),
        n_hard_constraints=len(c.hard_constraints),
        hard_constraints=", ".join(f"`{p.id}`" for p in c.hard_constraints) or "none",
        tier_order=" > ".join(x.id for x in c.tiers),
        training_safety=s.training_safety(),
        evaluation=s.evaluation(),
        guard=s.guard(),
        runtime=s.runtime_section(),
        assessment=s.assessment_section(),
        retention="\n".join("- " + r for r in retention)
        if retention
        else "- _No gateway configuration or profile given: retention is unlimited by default._",
        trip_rules=", ".join(
            f"{r['kind']} ≥ {r['threshold']} in {r['window_seconds']:g} s" for r in (prof.trip_rules() if prof else [])
        )
        or "as configured",
        seal=s.seal(),
    )
