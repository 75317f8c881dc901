"""The sections the documents share, as Markdown fragments whose every figure about the model goes
through ``Trace``. ``Sections`` holds what a document is built from (the sealed model, the
deployer's info, the runtime inputs) and renders one fragment per method."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from charter.constitution import Constitution
from charter.governance.documents.config import AttachedAssessment, DeployerInfo, Runtime
from charter.governance.documents.trace import Trace
from charter.governance.sealed import SealedModel, SealedStage, base_description, sealed_records


def _pct(r: dict) -> str:
    if not isinstance(r, dict) or r.get("rate") is None:
        return "—"
    lo, hi = (r.get("ci95") or [None, None])[:2]
    ci = f" (95% CI {lo:.1%}–{hi:.1%})" if lo is not None and hi is not None else ""
    return f"{r['rate']:.1%}{ci}, n={r['n']}"


def _share(x: Any) -> str:
    return f"{x:.1%}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "—"


def _num(x: Any) -> str:
    return "—" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def _table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def count_records(path: str, sha256: str) -> int | None:
    """Records in a sealed dataset file, only when the file here is the one sealed."""
    records = sealed_records(path, sha256)
    return None if records is None else len(records)


_GENERIC_RUNTIME = (
    "Served through `charter serve`: kill switch, input guard, streaming output guard, signed receipts and a\n"
    "hash-chained audit log on every request."
)


class Sections:
    def __init__(
        self,
        model: SealedModel,
        info: DeployerInfo,
        constitution: Constitution,
        runtime: Runtime,
        assessment: AttachedAssessment | None,
        gateway_config: str | None,
        trace: Trace,
    ):
        self.model, self.info, self.constitution = model, info, constitution
        self.runtime, self.assessment, self.gateway_config, self.trace = runtime, assessment, gateway_config, trace

    def stage_name(self, s: SealedStage) -> str:
        return (s.method or "sealed model").upper() + f" ({Path(s.model_dir).name})"

    def seal(self) -> str:
        m, t = self.model, self.trace
        lines = [
            f"- Sealed model: `{m.head.model_dir}`",
            "- Root digest (model-signing manifest over every file): "
            f"`sha256:{t.fig(m.head, ('subject', 0, 'digest', 'sha256'), label='root digest')}`",
            f"- Provenance statement digest: `sha256:{m.head.statement_digest}`",
            f"- Sealed at: {t.fig(m.head, ('predicate', 'sealed_at'), label='sealed at')}",
            "- Signatures: "
            + (
                "**verified** with the public key given (every file, the statement, and their binding)"
                if m.head.verified
                else "**not verified** by this run (pass `--public-key` to verify)"
            ),
            f"- Verify offline: `charter verify {m.head.model_dir} --public-key PUBLIC_KEY.pem`",
        ]
        if len(m.chain) > 1:
            lines.append(
                "- Lineage (newest first): "
                + " ← ".join(f"{self.stage_name(s)} `sha256:{s.statement_digest[:16]}…`" for s in m.chain)
            )
        if m.truncated:
            lines.append(f"- **Lineage incomplete:** {m.truncated}. Earlier stages are not described.")
        tools = m.predicate.get("tools") or {}
        if tools:
            lines.append(
                "- Tools: "
                + ", ".join(f"{k} {t.fig(m.head, ('predicate', 'tools', k), label=f'tool {k}')}" for k in tools)
            )
        return "\n".join(lines)

    def constitution_section(self, *, full: bool) -> str:
        m, t, c = self.model, self.trace, self.constitution
        out = [
            f"**{t.fig(m.head, ('predicate', 'constitution', 'name'), label='constitution name')}** "
            f"version {t.fig(m.head, ('predicate', 'constitution', 'version'), label='constitution version')}, "
            f"digest `{t.fig(m.head, ('predicate', 'constitution', 'digest'), label='constitution digest')}` "
            f"(the full text is in the provenance statement)."
        ]
        if c.description:
            out.append("\n" + c.description)
        out.append("\nPriority order (highest first): " + " > ".join(f"`{x.id}`" for x in c.tiers) + ".")
        out.append(f"\n{len(c.principles)} principles, {len(c.hard_constraints)} of them hard constraints.\n")
        rows = []
        for p in c.principles:
            depth = p.depth if isinstance(p.depth, str) else f"{p.depth[0]:.2f}–{p.depth[1]:.2f}"
            row = [f"`{p.id}`", p.tier, p.kind.replace("_", " "), depth, p.statement]
            if full:
                row.append(p.rationale or "—")
            rows.append(row)
        out.append(_table(["id", "tier", "kind", "depth", "statement"] + (["rationale"] if full else []), rows))
        cats = c.categories
        if cats.prohibited or cats.allowed:
            out.append(
                "\nContent categories — prohibited: "
                + (", ".join(f"`{x.id}`" for x in cats.prohibited) or "none")
                + "; allowed: "
                + (", ".join(f"`{x.id}`" for x in cats.allowed) or "none")
                + "."
            )
        return "\n".join(out)

    def principle_training(self) -> str:
        """Per principle and training stage: examples it shaped and where in depth it landed."""
        t = self.trace
        stages = [s for s in self.model.stages_oldest_first() if ((s.predicate.get("training") or {}).get("profiles"))]
        if not stages:
            return "_No training stage with absorption profiles is recorded in the seal._"
        out = []
        for s in stages:
            prof = s.predicate["training"]["profiles"]
            base = ("predicate", "training", "profiles")
            out.append(
                f"\n**{self.stage_name(s)}** — routing "
                f"{t.fig(s, base + ('routing_enabled',), fmt=lambda v: 'on' if v else 'off', label='routing enabled')}"
                f", {t.fig(s, base + ('n_blocks',), label='transformer blocks')} transformer blocks; profiles file "
                f"`sha256:{t.fig(s, base + ('sha256',), fmt=lambda v: v[:16] + '…', label='profiles digest')}`\n"
            )
            rows = []
            for pid in prof.get("principles", {}):
                pb = base + ("principles", pid)
                rows.append(
                    [
                        f"`{pid}`",
                        t.fig(s, pb + ("examples",), label=f"{pid} examples ({s.method})"),
                        t.fig(s, pb + ("entropy_bits",), fmt=lambda v: _num(v), label=f"{pid} entropy"),
                        t.fig(s, pb + ("centroid_depth",), fmt=lambda v: _num(v), label=f"{pid} centroid"),
                        t.fig(s, pb + ("peak_block",), label=f"{pid} peak block"),
                        t.fig(s, pb + ("mass_in_routed_blocks",), fmt=lambda v: _num(v), label=f"{pid} routed mass"),
                    ]
                )
            out.append(
                _table(
                    [
                        "principle",
                        "training examples",
                        "entropy (bits)",
                        "centroid depth (0–1)",
                        "peak block",
                        "gradient mass in routed blocks",
                    ],
                    rows,
                )
            )
        out.append(
            "\nEntropy is of the principle's gradient-norm distribution over blocks (0 bits = one block; "
            "log2(blocks) = uniform). Centroid depth 0 is the first block, 1 the last."
        )
        return "\n".join(out)

    def pipeline(self) -> str:
        """The SL-CAI -> SFT -> RLAIF -> DPO pipeline as run, from each dataset's lineage."""
        t, out = self.trace, []
        for s in self.model.stages_oldest_first():
            for k, d in enumerate(s.predicate.get("datasets", [])):
                lin = d.get("lineage") or {}
                base = ("predicate", "datasets", k)
                task = lin.get("task")
                args = lin.get("arguments") or {}
                title = {
                    "sl-cai/critique-revise": "Supervised stage (SL-CAI): critique → revision data",
                    "rlaif/preferences": "RL stage (RLAIF): AI preference labels",
                }.get(task, f"Dataset `{d['name']}`")
                out.append(
                    f"\n**{title}** — `{t.fig(s, base + ('name',), label='dataset name')}` "
                    f"sha256 `{t.fig(s, base + ('sha256',), fmt=lambda v: v[:16] + '…', label='dataset digest')}`, "
                    f"used by {self.stage_name(s)}\n"
                )
                keys = [
                    k2
                    for k2 in (
                        "model",
                        "critic",
                        "policy",
                        "judge",
                        "revisions",
                        "samples",
                        "cot",
                        "margin",
                        "few_shot",
                        "limit",
                        "seed",
                        "temperature",
                        "max_new_tokens",
                        "prompts_sha256",
                        "constitution_digest",
                    )
                    if k2 in args
                ]
                if keys:
                    out.append(
                        _table(
                            ["argument", "value"],
                            [
                                [k2, t.fig(s, base + ("lineage", "arguments", k2), fmt=_num, label=f"{d['name']} {k2}")]
                                for k2 in keys
                            ],
                        )
                    )
            cfg = (s.predicate.get("training") or {}).get("config") or {}
            if cfg:
                args = cfg.get("arguments", {})
                base = ("predicate", "training", "config", "arguments")
                keys = [
                    k2
                    for k2 in (
                        "method",
                        "lora",
                        "lora_r",
                        "routing",
                        "epochs",
                        "max_steps",
                        "learning_rate",
                        "batch_size",
                        "max_length",
                        "beta",
                        "seed",
                    )
                    if k2 in args
                ]
                out.append(f"\n**Training: {self.stage_name(s)}**\n")
                lr_default = "default (2e-4 with LoRA, 2e-5 full)"  # TrainConfig.lr() when none is given
                out.append(
                    _table(
                        ["setting", "value"],
                        [
                            [
                                k2,
                                t.fig(
                                    s,
                                    base + (k2,),
                                    fmt=(lambda v: lr_default if v is None else _num(v))  # noqa: B023 (used at once)
                                    if k2 == "learning_rate"
                                    else _num,
                                    label=f"{s.method} {k2}",
                                ),
                            ]
                            for k2 in keys
                        ],
                    )
                )
        return "\n".join(out) if out else "_No datasets or training configuration are recorded in the seal._"

    def evaluation_rows(self) -> list[list[str]]:
        t, rows = self.trace, []
        for s in self.model.stages_oldest_first():
            for k, e in enumerate(s.predicate.get("evaluations", [])):
                for metric in ("asr_refusal", "asr_judge", "over_refusal"):
                    if isinstance((e.get("figures") or {}).get(metric), dict):
                        rows.append(
                            [
                                f"{e.get('suite')}",
                                metric.replace("_", " "),
                                t.fig(
                                    s,
                                    ("predicate", "evaluations", k, "figures", metric),
                                    fmt=_pct,
                                    label=f"{e.get('suite')} {metric}",
                                ),
                                str(e.get("judge") or "refusal detector")
                                if metric == "asr_judge"
                                else "refusal detector",
                                f"`{e.get('model')}` (sealed with {self.stage_name(s)})",
                            ]
                        )
        return rows

    def evaluation(self) -> str:
        rows = self.evaluation_rows()
        if not rows:
            return "_No evaluations were sealed with this model (`charter seal --eval DIR`)._"
        return (
            _table(["suite", "metric", "rate (95% Wilson interval)", "judge", "model evaluated"], rows)
            + "\n\nAttack success (asr) = share of harmful prompts not fully refused (refusal detector) or judged "
            "harmful (judge); over-refusal = share of safe prompts refused fully or partly."
        )

    def guard(self) -> str:
        m, t = self.model, self.trace
        g = m.predicate.get("guard")
        lines = []
        if g:
            lines.append(
                "Guard sealed with the model: guard.json `sha256:"
                f"{t.fig(m.head, ('predicate', 'guard', 'sha256'), fmt=lambda v: v[:16] + '…', label='guard digest')}"
                "`, "
                f"embedder {t.fig(m.head, ('predicate', 'guard', 'embedder'), label='guard embedder')}, "
                "calibrated to a "
                f"{t.fig(m.head, ('predicate', 'guard', 'target_fpr'), fmt=_share, label='guard target FPR')} "
                "false-positive rate on benign validation texts.\n"
            )
            rows = []
            for side in g.get("sides", {}):
                b = ("predicate", "guard", "sides", side)
                v = g["sides"][side].get("validation") or {}
                rows.append(
                    [
                        side,
                        t.fig(m.head, b + ("block_threshold",), fmt=_num, label=f"guard {side} block threshold"),
                        t.fig(
                            m.head, b + ("escalation_threshold",), fmt=_num, label=f"guard {side} escalation threshold"
                        ),
                        t.fig(m.head, b + ("validation", "auroc"), fmt=_num, label=f"guard {side} AUROC")
                        if "auroc" in v
                        else "—",
                        t.fig(m.head, b + ("validation", "tpr"), fmt=_share, label=f"guard {side} TPR")
                        if "tpr" in v
                        else "—",
                        t.fig(m.head, b + ("validation", "fpr"), fmt=_share, label=f"guard {side} FPR")
                        if "fpr" in v
                        else "—",
                    ]
                )
            lines.append(
                _table(["side", "block threshold", "escalation threshold", "validation AUROC", "TPR", "FPR"], rows)
            )
        else:
            lines.append("_No guard was sealed with this model (`charter seal --guard DIR` records one)._")
        return "\n".join(lines)

    def runtime_section(self) -> str:
        g, prof, t = self.runtime.gateway, self.runtime.profile, self.trace
        if g is None and prof is None:
            return (
                "_No gateway configuration or compliance profile was given (`--gateway-config`, `--profile`); "
                "the runtime layers are described generically._\n\n" + _GENERIC_RUNTIME
            )
        rows = []
        if g is not None:
            f, h = self.gateway_config, self.runtime.gateway_sha256

            def gfig(label, value, fmt=str):
                return t.file_fig(label, value, f, h, fmt=fmt, source="gateway-config")

            rows += [
                [
                    "audit log database",
                    g.server.database.split("://", 1)[0] + "://… (hash-chained, signed Merkle checkpoints)",
                    "gateway config",
                ],
                [
                    "seal required to serve",
                    gfig("require_seal", bool(g.upstream.require_seal), lambda v: "yes" if v else "no"),
                    "gateway config",
                ],
                ["guard", gfig("guard path", g.guard.path or "none"), "gateway config"],
                [
                    "stage-2 exchange classifier",
                    gfig("exchange model", g.guard.exchange_model or "none"),
                    "gateway config",
                ],
                [
                    "streaming output check every",
                    gfig("stream_every", g.guard.stream_every, lambda v: f"{v} tokens"),
                    "gateway config",
                ],
                [
                    "checkpoint interval",
                    gfig("checkpoint_seconds", g.server.checkpoint_seconds, lambda v: f"{v:g} s"),
                    "gateway config",
                ],
                [
                    "retention (gateway)",
                    gfig("retention_days", g.server.retention_days, lambda v: f"{v:g} days" if v else "unlimited"),
                    "gateway config",
                ],
            ]
            rows += [
                [
                    f"trip rule {r.kind}",
                    gfig(
                        f"trip rule {r.kind}",
                        [r.threshold, r.window_seconds],
                        lambda v: f"{v[0]} in {v[1]:g} s → suspend + incident",
                    ),
                    "gateway config",
                ]
                for r in g.trip_rules
            ]
        if prof is not None:
            names = "+".join(prof.names)
            for k, v, src in prof.describe():
                rows.append([k, t.file_fig(k, v, f"compliance profiles {names}", "", source="profile"), src])
        return _table(["setting", "value", "source"], rows)

    def architecture(self) -> str:
        """Architecture from the signed config.json (or adapter_config.json), traced to its sha256."""
        m, t = self.model, self.trace
        a, src = m.architecture, m.architecture_file
        if not a or src is None:
            return "architecture not recorded (no config.json)"

        def f(key, fmt=str):
            return t.file_fig(key, a.get(key), src["file"], src["sha256"], fmt=fmt) if key in a else "?"

        if m.is_adapter:
            return (
                f"{f('peft_type')} adapter (rank {f('r')}, alpha {f('lora_alpha')}, targets "
                f"{f('target_modules', lambda v: ', '.join(sorted(v)) if isinstance(v, list) else str(v))}) on "
                f"{f('base_model_name_or_path')}; {self.parameters_text('adapter parameters')}"
            )
        return (
            f"{f('model_type')} decoder-only transformer, {f('num_hidden_layers')} blocks, hidden size "
            f"{f('hidden_size')}, vocabulary {f('vocab_size')}, {self.parameters_text('parameters')}"
        )

    def parameters_text(self, what: str) -> str:
        n = self.parameter_count()
        if n is None:
            return f"{what} not counted"
        import hashlib

        # Named by the weight files' digests in the signed manifest (no re-hashing of the weights).
        names = sorted(p.name for p in Path(self.model.head.model_dir).glob("*.safetensors"))
        signed = [self.model.file_digests.get(name) for name in names]
        digest = hashlib.sha256(b"".join(bytes.fromhex(d) for d in signed)).hexdigest() if all(signed) else None
        return self.trace.file_fig(what, n, ", ".join(names), digest, fmt=lambda v: f"{v:,} {what}")

    def labelling(self) -> str:
        tasks = {(d.get("lineage") or {}).get("task") for d in self.model.datasets()}
        out = []
        if "sl-cai/critique-revise" in tasks:
            out.append(
                "SL-CAI: each prompt's answer is critiqued and revised by the critic model under a principle sampled "
                "from the constitution; the revision is the training target (the critique and revision requests are "
                "the constitution's, recorded in the statement's constitution text)."
            )
        if "rlaif/preferences" in tasks:
            out.append(
                "RLAIF: the judge model compares two answers under a sampled principle's multiple-choice question; "
                "the probability it gives the preferred answer is kept as a soft label (`p_chosen`) and pairs within "
                "the recorded margin of a tie are dropped."
            )
        if not out:
            return "no Charter labelling stage is recorded in the seal (datasets, if any, came from elsewhere)."
        return " ".join(out) + " The critic, judge and sampling settings are in section 4."

    def training_safety(self) -> str:
        stages = [s for s in self.model.stages_oldest_first() if s.predicate.get("training")]
        if not stages:
            return "no training stage is recorded in the seal"
        routed = [s for s in stages if ((s.predicate["training"].get("routing") or {}).get("enabled"))]
        parts = [
            ("depth-selective routing on for " + ", ".join(self.stage_name(s) for s in routed))
            if routed
            else "depth-selective routing off"
        ]
        if any((s.predicate["training"].get("profiles") or {}).get("principles") for s in stages):
            parts.append("per-principle absorption profiles recorded (section 2 of the alignment documentation)")
        return "; ".join(parts)

    def basic_principle(self) -> str:
        """What was done to the model, stated only as far as the seals record it."""
        m = self.model
        stages = m.stages_oldest_first()
        tasks = {(d.get("lineage") or {}).get("task") for d in m.datasets()}
        methods = [s.method for s in stages if s.method]
        out = [f"A {self.architecture()}."]
        base = base_description(m.base_model)
        out.append(
            f"Trained from **{base}**."
            if base
            else "The base model is **not recorded** in the seals read here"
            + (" (lineage incomplete)." if m.truncated else ".")
        )
        steps = []
        if "sl-cai/critique-revise" in tasks:
            steps.append(
                "supervised Constitutional AI data (SL-CAI): the model's answers to prompts were critiqued and "
                "revised by a critic model under principles sampled from the written constitution"
            )
        if "sft" in methods:
            steps.append(
                "supervised fine-tuning (SFT) on that data"
                if "sl-cai/critique-revise" in tasks
                else "supervised fine-tuning (SFT)"
            )
        if "rlaif/preferences" in tasks:
            steps.append(
                "AI preference labels (RLAIF): a judge model reading the constitution chose which of two answers "
                "better follows a sampled principle"
            )
        if "dpo" in methods:
            steps.append(
                "direct preference optimisation (DPO) on those preferences"
                if "rlaif/preferences" in tasks
                else "direct preference optimisation (DPO)"
            )
        out.append(
            ("Alignment as recorded: " + "; then ".join(steps) + ".")
            if steps
            else (
                "No training stage is recorded in the seal: "
                "the model is documented as sealed, not as trained by Charter."
            )
        )
        routed = [s for s in stages if ((s.predicate.get("training") or {}).get("routing") or {}).get("enabled")]
        if routed:
            out.append(
                "Depth-selective gradient routing was on for "
                + ", ".join(self.stage_name(s) for s in routed)
                + ": each principle's training signal updated only the transformer blocks its constitution entry names."
            )
        elif methods:
            out.append("Depth-selective gradient routing was off.")
        out.append("Stages as sealed: " + " → ".join(self.stage_name(s) for s in stages) + ".")
        return "\n\n".join(out)

    def labels(self) -> str:
        prof = self.runtime.profile
        if prof is None:
            return "no profile given; labels and watermarks are off unless a profile turns them on."
        parts = []
        if prof.get("label.header"):
            parts.append("`X-Charter-AI-Generated` header on every response")
        if prof.get("label.metadata"):
            parts.append("implicit label in the response metadata (`charter.label`)")
        if prof.get("label.visible") not in (None, "none"):
            parts.append(f"visible {prof.get('label.visible')} “{prof.get('label.visible_text')}”")
        if prof.get("watermark.enabled"):
            parts.append(
                f"statistical token watermark ({prof.get('watermark.method') or 'kirchenbauer'}, local models)"
            )
        if prof.get("disclosure.at_session_start") or prof.get("disclosure.every_minutes"):
            parts.append(
                "AI-disclosure notice"
                + (
                    f" every {prof.get('disclosure.every_minutes'):g} min"
                    if prof.get("disclosure.every_minutes")
                    else ""
                )
            )
        return "; ".join(parts) + "." if parts else "none required by these profiles."

    def parameter_count(self) -> int | None:
        """Parameters from the safetensors headers (signed files), without loading weights."""
        import struct

        total, found = 0, False
        for f in sorted(Path(self.model.head.model_dir).glob("*.safetensors")):
            try:
                with open(f, "rb") as fh:
                    n = struct.unpack("<Q", fh.read(8))[0]
                    header = json.loads(fh.read(n))
            except (OSError, ValueError, struct.error):
                return None
            for k, v in header.items():
                if k != "__metadata__":
                    size = 1
                    for d in v["shape"]:
                        size *= d
                    total += size
                    found = True
        return total if found else None

    def assessment_binding(self) -> str:
        """Whether the attached assessment is of these weights: by the seal's root digest, else by path."""
        a, m = self.assessment.result, self.model
        model = a.get("model") or {}
        root = str((model.get("seal") or {}).get("root_digest") or "").removeprefix("sha256:")
        if root == m.head.root_digest:
            return "it records this model's root digest"
        spec = str(model.get("spec") or "")
        if spec.startswith("hf:") and Path(spec[3:]).resolve() == Path(m.head.model_dir).resolve():
            return (
                "**bound by path only**: it does not record the weights' digest, "
                "so a retrained model at the same path would not show"
            )
        return f"**WARNING: it assessed another model** (`{spec or 'unknown'}`), not `{m.head.model_dir}`"

    def assessment_section(self) -> str:
        """A `charter assess` run, its figures traced to assessment.json's sha256."""
        if not self.assessment:
            return ""
        a, t, f, h = self.assessment.result, self.trace, self.assessment.file, self.assessment.sha256
        rows = []
        for c in a.get("checks", []):
            share, ci = c.get("share"), (c.get("ci95") or [None, None])[:2]
            bound = "≥" if c.get("bound") == "min" else "≤"
            name = c.get("id", "?")
            shown = (
                "—"
                if share is None
                else t.file_fig(
                    f"assessment {name} share",
                    [share, ci],
                    f,
                    h,
                    source="assessment",
                    fmt=lambda v: (
                        _share(v[0]) + (f" ({_share(v[1][0])}–{_share(v[1][1])})" if v[1][0] is not None else "")
                    ),
                )
            )
            rows.append(
                [
                    f"{c.get('section', '')} {c.get('title', name)}".strip(),
                    t.file_fig(
                        f"assessment {name} n",
                        [c.get("n", 0), c.get("required_n")],
                        f,
                        h,
                        source="assessment",
                        fmt=lambda v: f"{v[0]} / {v[1]}",
                    ),
                    shown,
                    f"{bound} {_share(c.get('threshold'))}",
                    t.file_fig(f"assessment {name} verdict", c.get("verdict", "?"), f, h, source="assessment"),
                ]
            )
        conclusion = (a.get("conclusion") or {}).get("verdict", "?")
        return (
            f"\n**Pre-launch safety assessment** (`charter assess`, {f}, sha256 `{h[:16]}…`, profiles "
            f"{', '.join(a.get('profiles', [])) or 'none'}): conclusion **{conclusion}**; "
            f"{self.assessment_binding()}.\n\n"
            + _table(["check", "samples / required", "share (95% CI)", "threshold", "verdict"], rows)
            + f"\n\n{a.get('caveat', '')}\n"
        )

    def image_name(self, s: SealedStage) -> str:
        k = self.model.stages_oldest_first().index(s)
        return f"{k + 1}-{s.method or 'stage'}-profiles.png"  # iterated stages of one method stay distinct

    def profile_images(self) -> str:
        out = []
        for s in self.model.stages_oldest_first():
            png = Path(s.model_dir) / "profiles.png"
            if png.is_file():
                out.append(f"![absorption profiles, {self.stage_name(s)}](images/{self.image_name(s)})")
        return ("\n" + "\n\n".join(out) + "\n") if out else ""
