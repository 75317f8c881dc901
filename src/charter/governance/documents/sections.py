"""The sections the documents share, as Markdown fragments whose every figure about the model goes
through ``Trace``. ``Sections`` holds what a document is built from (the sealed model, the
deployer's info, the runtime inputs) and renders one fragment per method: the sealed model's own
sections here, the filing's description of the model in ``filing_sections``, the runtime and an
attached assessment in ``deployment``."""

from __future__ import annotations

from pathlib import Path

from charter.constitution import Constitution
from charter.governance.documents.config import AttachedAssessment, DeployerInfo, Runtime
from charter.governance.documents.deployment import DeploymentSections
from charter.governance.documents.filing_sections import FilingSections
from charter.governance.documents.markdown import _num, _pct, _share, _table
from charter.governance.documents.trace import Trace
from charter.governance.sealed import SealedModel, SealedStage, sealed_records


def count_records(path: str, sha256: str) -> int | None:
    """Records in a sealed dataset file, only when the file here is the one sealed."""
    records = sealed_records(path, sha256)
    return None if records is None else len(records)


# The lineage arguments and training settings the pipeline section shows, in this order (when recorded).
_DATASET_ARGUMENTS = (
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
_TRAINING_SETTINGS = (
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


class Sections(FilingSections, DeploymentSections):
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
        out = []
        for s in self.model.stages_oldest_first():
            for k, d in enumerate(s.predicate.get("datasets", [])):
                out += self._dataset_lines(s, k, d)
            cfg = (s.predicate.get("training") or {}).get("config") or {}
            if cfg:
                out += self._training_lines(s, cfg)
        return "\n".join(out) if out else "_No datasets or training configuration are recorded in the seal._"

    def _dataset_lines(self, s: SealedStage, k: int, d: dict) -> list[str]:
        """The ``k``-th dataset of stage ``s``: what produced it and the arguments it recorded."""
        t = self.trace
        lin = d.get("lineage") or {}
        base = ("predicate", "datasets", k)
        task = lin.get("task")
        args = lin.get("arguments") or {}
        title = {
            "sl-cai/critique-revise": "Supervised stage (SL-CAI): critique → revision data",
            "rlaif/preferences": "RL stage (RLAIF): AI preference labels",
        }.get(task, f"Dataset `{d['name']}`")
        out = [
            f"\n**{title}** — `{t.fig(s, base + ('name',), label='dataset name')}` "
            f"sha256 `{t.fig(s, base + ('sha256',), fmt=lambda v: v[:16] + '…', label='dataset digest')}`, "
            f"used by {self.stage_name(s)}\n"
        ]
        keys = [k2 for k2 in _DATASET_ARGUMENTS if k2 in args]
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
        return out

    def _training_lines(self, s: SealedStage, cfg: dict) -> list[str]:
        """Stage ``s``'s training settings (its sealed train config's arguments)."""
        t = self.trace
        args = cfg.get("arguments", {})
        base = ("predicate", "training", "config", "arguments")
        keys = [k2 for k2 in _TRAINING_SETTINGS if k2 in args]
        lr_default = "default (2e-4 with LoRA, 2e-5 full)"  # TrainConfig.lr() when none is given
        return [
            f"\n**Training: {self.stage_name(s)}**\n",
            _table(
                ["setting", "value"],
                [
                    [
                        k2,
                        t.fig(
                            s,
                            base + (k2,),
                            fmt=(lambda v: lr_default if v is None else _num(v)) if k2 == "learning_rate" else _num,
                            label=f"{s.method} {k2}",
                        ),
                    ]
                    for k2 in keys
                ],
            ),
        ]

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
