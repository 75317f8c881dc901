"""Documents generated from a sealed model: a Hugging Face model card, alignment documentation for
enterprise buyers, and an algorithm-filing dossier for regulators.

Every figure about the model is read from a provenance statement (or from a file the seal signs)
through ``Trace``, which records the statement digest and JSON pointer — or the file and its
sha256 — it came from; ``*.trace.json`` beside the document lists them all, with the digests of
the documents themselves, so a reviewer can check each figure against the sealed statement
(``charter verify`` prints its digest). Runtime settings (gateway config, profiles) and an
attached assessment are not part of the seal: their figures are traced to those files' digests.
Facts the seal cannot know — the developer, the licence, the intended use, the service — come
from an ``--info`` TOML file and are printed as declared by the deployer.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict

from charter.constitution import parse_constitution
from charter.core.digests import file_sha256
from charter.core.errors import InputError
from charter.core.io import write_text_atomic
from charter.core.tomlinput import load_toml_model
from charter.governance.sealed import SealedModel, SealedStage, base_description, load_sealed, sealed_records

KINDS = ("model-card", "alignment", "filing")
FORMATS = ("md", "html")
# The embedded default model, named as the Hub knows it (the GGUF is a quantised copy of it).
EMBEDDED_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


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


# -- traceability --------------------------------------------------------------------------------------

def _escape(part: Any) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def resolve_pointer(doc: Any, pointer: str) -> Any:
    """RFC 6901 JSON pointer lookup (what a reviewer runs against the statement)."""
    node = doc
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@dataclass
class Trace:
    items: list[dict] = field(default_factory=list)

    def fig(self, stage: SealedStage, path: tuple, fmt: Callable[[Any], str] = str, label: str = "") -> str:
        """The value at ``path`` in ``stage``'s statement, formatted, and recorded with its pointer."""
        value: Any = stage.statement
        for part in path:
            value = value[part]
        shown = fmt(value)
        self.items.append({"label": label or path[-1], "shown": shown, "value": value,
                           "source": "statement", "statement_digest": stage.statement_digest, "model_dir": stage.model_dir,
                           "pointer": "/" + "/".join(_escape(p) for p in path)})
        return shown

    def file_fig(self, label: str, value: Any, file: str, digest: str, fmt: Callable[[Any], str] = str,
                 source: str = "file") -> str:
        """A figure read from a file: one the seal covers (``file``), or a runtime input beside it
        (``gateway-config``, ``profile``, ``assessment``), named by its sha256."""
        shown = fmt(value)
        self.items.append({"label": label, "shown": shown, "value": value, "source": source,
                           "file": file, "sha256": digest})
        return shown


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


# -- the builder -------------------------------------------------------------------------------------

class DocumentBuilder:
    def __init__(self, config: DocsConfig):
        config.validate()
        self.config = config
        self.model: SealedModel = load_sealed(config.model_dir, config.public_key)
        out = Path(config.out).resolve()
        if out.exists() and not out.is_dir():
            raise InputError("exists and is not a directory", source=config.out)
        if out == Path(config.model_dir).resolve() or Path(config.model_dir).resolve() in out.parents:
            # A file added inside a sealed model directory breaks its signature (verify, require_seal).
            raise InputError("is inside the sealed model directory; write the documents elsewhere and copy the model "
                             "card into the published repository at release time", source="--out")
        self.info = load_info(config.info)
        self.trace = Trace()
        self.runtime = self._runtime()
        self.assessment = self._assessment()
        self.constitution = parse_constitution(self.model.constitution["text"], source="sealed constitution")

    # -- inputs beside the seal ---------------------------------------------------------------------------
    def _runtime(self) -> dict:
        c = self.config
        out: dict = {"gateway": None, "profile": None}
        profiles = list(c.profiles)
        if c.gateway_config:
            from charter.gateway.config import load_gateway_config

            g = load_gateway_config(c.gateway_config)
            out["gateway"] = g
            out["gateway_sha256"] = file_sha256(c.gateway_config).split(":", 1)[1]
            profiles = profiles or list(g.compliance.profiles)
        if profiles:
            from charter.policy.profiles import compose

            out["profile"] = compose(profiles)
        return out

    def _assessment(self) -> dict | None:
        if not self.config.assessment:
            return None
        p = Path(self.config.assessment) / "assessment.json"
        if not p.is_file():
            raise InputError("not an assessment directory (no assessment.json)", source=self.config.assessment)
        try:
            a = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError):
            raise InputError("assessment.json is not JSON", source=str(p)) from None
        if not isinstance(a, dict) or not isinstance(a.get("checks"), list):
            raise InputError("is not a charter assess result (no checks)", source=str(p))
        a["_sha256"] = file_sha256(p).split(":", 1)[1]
        a["_file"] = str(p)
        return a

    # -- shared sections ---------------------------------------------------------------------------------
    def _stage_name(self, s: SealedStage) -> str:
        return (s.method or "sealed model").upper() + f" ({Path(s.model_dir).name})"

    def _seal_section(self) -> str:
        m, t = self.model, self.trace
        lines = [
            f"- Sealed model: `{m.head.model_dir}`",
            f"- Root digest (model-signing manifest over every file): `sha256:{t.fig(m.head, ('subject', 0, 'digest', 'sha256'), label='root digest')}`",
            f"- Provenance statement digest: `sha256:{m.head.statement_digest}`",
            f"- Sealed at: {t.fig(m.head, ('predicate', 'sealed_at'), label='sealed at')}",
            "- Signatures: " + ("**verified** with the public key given (every file, the statement, and their binding)"
                                if m.head.verified else "**not verified** by this run (pass `--public-key` to verify)"),
            f"- Verify offline: `charter verify {m.head.model_dir} --public-key PUBLIC_KEY.pem`",
        ]
        if len(m.chain) > 1:
            lines.append("- Lineage (newest first): " + " ← ".join(
                f"{self._stage_name(s)} `sha256:{s.statement_digest[:16]}…`" for s in m.chain))
        if m.truncated:
            lines.append(f"- **Lineage incomplete:** {m.truncated}. Earlier stages are not described.")
        tools = m.predicate.get("tools") or {}
        if tools:
            lines.append("- Tools: " + ", ".join(f"{k} {t.fig(m.head, ('predicate', 'tools', k), label=f'tool {k}')}" for k in tools))
        return "\n".join(lines)

    def _constitution_section(self, *, full: bool) -> str:
        m, t, c = self.model, self.trace, self.constitution
        out = [f"**{t.fig(m.head, ('predicate', 'constitution', 'name'), label='constitution name')}** "
               f"version {t.fig(m.head, ('predicate', 'constitution', 'version'), label='constitution version')}, "
               f"digest `{t.fig(m.head, ('predicate', 'constitution', 'digest'), label='constitution digest')}` "
               f"(the full text is in the provenance statement)."]
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
            out.append("\nContent categories — prohibited: " + (", ".join(f"`{x.id}`" for x in cats.prohibited) or "none")
                       + "; allowed: " + (", ".join(f"`{x.id}`" for x in cats.allowed) or "none") + ".")
        return "\n".join(out)

    def _principle_training(self) -> str:
        """Per principle and training stage: examples it shaped and where in depth it landed."""
        t = self.trace
        stages = [s for s in self.model.stages_oldest_first() if ((s.predicate.get("training") or {}).get("profiles"))]
        if not stages:
            return "_No training stage with absorption profiles is recorded in the seal._"
        out = []
        for s in stages:
            prof = s.predicate["training"]["profiles"]
            base = ("predicate", "training", "profiles")
            out.append(f"\n**{self._stage_name(s)}** — routing "
                       f"{t.fig(s, base + ('routing_enabled',), fmt=lambda v: 'on' if v else 'off', label='routing enabled')}, "
                       f"{t.fig(s, base + ('n_blocks',), label='transformer blocks')} transformer blocks; profiles file "
                       f"`sha256:{t.fig(s, base + ('sha256',), fmt=lambda v: v[:16] + '…', label='profiles digest')}`\n")
            rows = []
            for pid in prof.get("principles", {}):
                pb = base + ("principles", pid)
                rows.append([f"`{pid}`",
                             t.fig(s, pb + ("examples",), label=f"{pid} examples ({s.method})"),
                             t.fig(s, pb + ("entropy_bits",), fmt=lambda v: _num(v), label=f"{pid} entropy"),
                             t.fig(s, pb + ("centroid_depth",), fmt=lambda v: _num(v), label=f"{pid} centroid"),
                             t.fig(s, pb + ("peak_block",), label=f"{pid} peak block"),
                             t.fig(s, pb + ("mass_in_routed_blocks",), fmt=lambda v: _num(v), label=f"{pid} routed mass")])
            out.append(_table(["principle", "training examples", "entropy (bits)", "centroid depth (0–1)", "peak block",
                               "gradient mass in routed blocks"], rows))
        out.append("\nEntropy is of the principle's gradient-norm distribution over blocks (0 bits = one block; "
                   "log2(blocks) = uniform). Centroid depth 0 is the first block, 1 the last.")
        return "\n".join(out)

    def _pipeline_section(self) -> str:
        """The SL-CAI -> SFT -> RLAIF -> DPO pipeline as run, from each dataset's lineage."""
        t, out = self.trace, []
        for s in self.model.stages_oldest_first():
            for k, d in enumerate(s.predicate.get("datasets", [])):
                lin = d.get("lineage") or {}
                base = ("predicate", "datasets", k)
                task = lin.get("task")
                args = lin.get("arguments") or {}
                title = {"sl-cai/critique-revise": "Supervised stage (SL-CAI): critique → revision data",
                         "rlaif/preferences": "RL stage (RLAIF): AI preference labels"}.get(task, f"Dataset `{d['name']}`")
                out.append(f"\n**{title}** — `{t.fig(s, base + ('name',), label='dataset name')}` "
                           f"sha256 `{t.fig(s, base + ('sha256',), fmt=lambda v: v[:16] + '…', label='dataset digest')}`, "
                           f"used by {self._stage_name(s)}\n")
                keys = [k2 for k2 in ("model", "critic", "policy", "judge", "revisions", "samples", "cot", "margin",
                                      "few_shot", "limit", "seed", "temperature", "max_new_tokens", "prompts_sha256",
                                      "constitution_digest") if k2 in args]
                if keys:
                    out.append(_table(["argument", "value"], [
                        [k2, t.fig(s, base + ("lineage", "arguments", k2), fmt=_num, label=f"{d['name']} {k2}")] for k2 in keys]))
            cfg = ((s.predicate.get("training") or {}).get("config") or {})
            if cfg:
                args = cfg.get("arguments", {})
                base = ("predicate", "training", "config", "arguments")
                keys = [k2 for k2 in ("method", "lora", "lora_r", "routing", "epochs", "max_steps", "learning_rate",
                                      "batch_size", "max_length", "beta", "seed") if k2 in args]
                out.append(f"\n**Training: {self._stage_name(s)}**\n")
                lr_default = "default (2e-4 with LoRA, 2e-5 full)"  # TrainConfig.lr() when none is given
                out.append(_table(["setting", "value"], [
                    [k2, t.fig(s, base + (k2,), fmt=(lambda v: lr_default if v is None else _num(v)) if k2 == "learning_rate" else _num,
                               label=f"{s.method} {k2}")] for k2 in keys]))
        return "\n".join(out) if out else "_No datasets or training configuration are recorded in the seal._"

    def _evaluation_rows(self) -> list[list[str]]:
        t, rows = self.trace, []
        for s in self.model.stages_oldest_first():
            for k, e in enumerate(s.predicate.get("evaluations", [])):
                for metric in ("asr_refusal", "asr_judge", "over_refusal"):
                    if isinstance((e.get("figures") or {}).get(metric), dict):
                        rows.append([f"{e.get('suite')}", metric.replace("_", " "),
                                     t.fig(s, ("predicate", "evaluations", k, "figures", metric), fmt=_pct,
                                           label=f"{e.get('suite')} {metric}"),
                                     str(e.get("judge") or "refusal detector") if metric == "asr_judge" else "refusal detector",
                                     f"`{e.get('model')}` (sealed with {self._stage_name(s)})"])
        return rows

    def _evaluation_section(self) -> str:
        rows = self._evaluation_rows()
        if not rows:
            return "_No evaluations were sealed with this model (`charter seal --eval DIR`)._"
        return (_table(["suite", "metric", "rate (95% Wilson interval)", "judge", "model evaluated"], rows)
                + "\n\nAttack success (asr) = share of harmful prompts not fully refused (refusal detector) or judged "
                "harmful (judge); over-refusal = share of safe prompts refused fully or partly.")

    def _guard_section(self) -> str:
        m, t = self.model, self.trace
        g = m.predicate.get("guard")
        lines = []
        if g:
            lines.append(f"Guard sealed with the model: guard.json `sha256:{t.fig(m.head, ('predicate', 'guard', 'sha256'), fmt=lambda v: v[:16] + '…', label='guard digest')}`, "
                         f"embedder {t.fig(m.head, ('predicate', 'guard', 'embedder'), label='guard embedder')}, "
                         f"calibrated to a {t.fig(m.head, ('predicate', 'guard', 'target_fpr'), fmt=_share, label='guard target FPR')} "
                         "false-positive rate on benign validation texts.\n")
            rows = []
            for side in g.get("sides", {}):
                b = ("predicate", "guard", "sides", side)
                v = g["sides"][side].get("validation") or {}
                rows.append([side, t.fig(m.head, b + ("block_threshold",), fmt=_num, label=f"guard {side} block threshold"),
                             t.fig(m.head, b + ("escalation_threshold",), fmt=_num, label=f"guard {side} escalation threshold"),
                             t.fig(m.head, b + ("validation", "auroc"), fmt=_num, label=f"guard {side} AUROC") if "auroc" in v else "—",
                             t.fig(m.head, b + ("validation", "tpr"), fmt=_share, label=f"guard {side} TPR") if "tpr" in v else "—",
                             t.fig(m.head, b + ("validation", "fpr"), fmt=_share, label=f"guard {side} FPR") if "fpr" in v else "—"])
            lines.append(_table(["side", "block threshold", "escalation threshold", "validation AUROC", "TPR", "FPR"], rows))
        else:
            lines.append("_No guard was sealed with this model (`charter seal --guard DIR` records one)._")
        return "\n".join(lines)

    def _runtime_section(self) -> str:
        g, prof, t = self.runtime["gateway"], self.runtime["profile"], self.trace
        if g is None and prof is None:
            return ("_No gateway configuration or compliance profile was given (`--gateway-config`, `--profile`); "
                    "the runtime layers are described generically._\n\n" + _GENERIC_RUNTIME)
        rows = []
        if g is not None:
            f, h = self.config.gateway_config, self.runtime["gateway_sha256"]

            def gfig(label, value, fmt=str):
                return t.file_fig(label, value, f, h, fmt=fmt, source="gateway-config")

            rows += [["audit log database", g.server.database.split("://", 1)[0] + "://… (hash-chained, signed Merkle checkpoints)", "gateway config"],
                     ["seal required to serve", gfig("require_seal", bool(g.upstream.require_seal), lambda v: "yes" if v else "no"), "gateway config"],
                     ["guard", gfig("guard path", g.guard.path or "none"), "gateway config"],
                     ["stage-2 exchange classifier", gfig("exchange model", g.guard.exchange_model or "none"), "gateway config"],
                     ["streaming output check every", gfig("stream_every", g.guard.stream_every, lambda v: f"{v} tokens"), "gateway config"],
                     ["checkpoint interval", gfig("checkpoint_seconds", g.server.checkpoint_seconds, lambda v: f"{v:g} s"), "gateway config"],
                     ["retention (gateway)", gfig("retention_days", g.server.retention_days, lambda v: f"{v:g} days" if v else "unlimited"), "gateway config"]]
            rows += [[f"trip rule {r.kind}", gfig(f"trip rule {r.kind}", [r.threshold, r.window_seconds],
                                                  lambda v: f"{v[0]} in {v[1]:g} s → suspend + incident"), "gateway config"]
                     for r in g.trip_rules]
        if prof is not None:
            names = "+".join(prof.names)
            for k, v, src in prof.describe():
                rows.append([k, t.file_fig(k, v, f"compliance profiles {names}", "", source="profile"), src])
        return _table(["setting", "value", "source"], rows)

    # -- documents -------------------------------------------------------------------------------------
    def model_card(self) -> str:
        import yaml

        m, info, t = self.model, self.info, self.trace
        base = m.base_model or {}
        # The embedded model is a GGUF copy of this Hub model: named only when its sealed digest says embedded.
        hf_base = info.base_model_hf_id or (EMBEDDED_HF_ID if (base.get("spec") == "embedded") else None)
        metrics = []
        for k, e in enumerate(m.head.predicate.get("evaluations", [])):
            for metric in ("asr_refusal", "asr_judge", "over_refusal"):
                r = (e.get("figures") or {}).get(metric)
                if isinstance(r, dict) and r.get("rate") is not None:
                    value = float(t.fig(m.head, ("predicate", "evaluations", k, "figures", metric, "rate"),
                                        fmt=lambda v: str(round(v, 4)), label=f"model-index {e.get('suite')} {metric}"))
                    metrics.append({"type": metric, "value": value, "name": f"{metric} ({e.get('suite')}, n={r['n']})"})
        methods = [s.method for s in m.stages_oldest_first() if s.method]
        tags = ["charter", "constitutional-ai", "sealed"] + [x for x in ("sft", "dpo") if x in methods]
        if any(((d.get("lineage") or {}).get("task") == "rlaif/preferences") for d in m.datasets()):
            tags.append("rlaif")
        meta: dict = {"library_name": "peft" if m.is_adapter else "transformers", "pipeline_tag": "text-generation",
                      "license": info.license or "other", "language": info.languages, "tags": tags}
        if hf_base:
            meta["base_model"] = hf_base
        if metrics:
            meta["model-index"] = [{"name": info.model_name or Path(m.head.model_dir).name, "results": [
                {"task": {"type": "text-generation"}, "dataset": {"name": "Charter evaluation suites", "type": "charter-eval"},
                 "metrics": metrics}]}]
        name = info.model_name or Path(m.head.model_dir).name
        methods = " → ".join((s.method or "?").upper() for s in m.stages_oldest_first())
        body = f"""# Model card for {name}

{name} is a causal language model aligned to the constitution **{m.constitution['name']} {m.constitution['version']}**
{('with Constitutional AI (' + methods + ')') if methods else '(no training stage recorded)'}, sealed with a signed provenance statement.

## Model details

- **Developed by:** {info.organisation or '_not declared (pass --info)_'}
- **Model type:** {self._architecture_text()}
- **Language(s):** {', '.join(info.languages)}
- **License:** {info.license or '_not declared_'}
- **Finetuned from:** {hf_base or base_description(base) or 'unknown'}
- **Contact:** {info.contact or '_not declared_'}

## Uses

**Intended use.** {info.intended_use or '_Not declared by the deployer (--info intended_use)._'}

**Out of scope.** {info.out_of_scope or 'Uses the constitution forbids; any use without the guard and gateway the deployer documents.'}

## Bias, risks and limitations

{info.limitations or 'The constitution shapes behaviour but does not guarantee it: the evaluation figures below, with their intervals, are the evidence. Small models and few training examples give wide intervals.'}

## Constitution

{self._constitution_section(full=False)}

## Training details

{self._pipeline_section()}

### Where each principle landed (absorption profiles)

{self._principle_training()}

## Evaluation

{self._evaluation_section()}

## Safeguards

{self._guard_section()}

## Provenance

{self._seal_section()}

## How to get started

```bash
charter verify {m.head.model_dir} --public-key PUBLIC_KEY.pem --constitution CONSTITUTION.toml
charter serve --model hf:{m.head.model_dir} --require-seal PUBLIC_KEY.pem
```
"""
        return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + body

    def alignment(self) -> str:
        m = self.model
        name = self.info.model_name or Path(m.head.model_dir).name
        return f"""# Alignment documentation: {name}

Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d')} by Charter from the sealed model. Every figure about the model is read
from the provenance statement `sha256:{m.head.statement_digest}` (or its parents) or a file it signs; runtime
settings from the gateway configuration and profiles. `alignment.trace.json` lists each figure with its source.

| item | value |
|---|---|
| Developer | {self.info.organisation or '_not declared_'} |
| Contact | {self.info.contact or '_not declared_'} |
| Licence | {self.info.license or '_not declared_'} |
| Intended use | {self.info.intended_use or '_not declared_'} |
| Base model | {self.info.base_model_hf_id or base_description(m.base_model) or 'unknown'} |

## 1. The constitution

{self._constitution_section(full=True)}

## 2. Evidence the principles were used in training

Each training example was produced under one or more sampled principles (SL-CAI critiques and revisions,
RLAIF comparisons) and, with depth-selective routing, trained only the blocks its principles are routed to.
The counts and absorption profiles below are those recorded at training time.

{self._principle_training()}
{self._profile_images()}
## 3. The RLAIF pipeline as run

{self._pipeline_section()}

## 4. Evaluations

{self._evaluation_section()}

## 5. Runtime safeguards

{self._guard_section()}

{self._runtime_section()}
{self._assessment_section()}
## 6. Provenance

{self._seal_section()}
"""

    def filing(self) -> str:
        m, info, t = self.model, self.info, self.trace
        g, prof = self.runtime["gateway"], self.runtime["profile"]
        retention = []
        if g is not None:
            days = t.file_fig("gateway retention_days", g.server.retention_days, self.config.gateway_config,
                              self.runtime["gateway_sha256"], fmt=lambda v: f"{v:g} days" if v else "unlimited (no purge configured)",
                              source="gateway-config")
            retention.append(f"Gateway retention: {days}")
        if prof is not None and prof.get("retention.min_days"):
            retention.append(f"Profile floor: at least {prof.get('retention.min_days'):g} days "
                             f"({' + '.join(prof.sources['retention.min_days'])})")
        data_rows = []
        for s in m.stages_oldest_first():
            for k, d in enumerate(s.predicate.get("datasets", [])):
                lin = d.get("lineage") or {}
                n = count_records(d["path"], d["sha256"])
                if n is not None:
                    scale = t.file_fig(f"records in {d['name']}", n, d["path"], d["sha256"])
                elif d.get("records") is not None:
                    scale = t.fig(s, ("predicate", "datasets", k, "records"), label=f"records in {d['name']}")
                else:
                    scale = "not recorded (file not on this machine)"
                prompts = (lin.get("arguments") or {}).get("prompts_sha256")
                data_rows.append([self._stage_name(s), t.fig(s, ("predicate", "datasets", k, "name"), label="dataset name"),
                                  lin.get("task") or "external", scale,
                                  f"`{t.fig(s, ('predicate', 'datasets', k, 'sha256'), fmt=lambda v: v[:16] + '…', label='dataset digest')}`",
                                  f"`{str(prompts)[:23]}…`" if prompts else "—"])
        stage_cols = [s for s in m.stages_oldest_first() if ((s.predicate.get("training") or {}).get("profiles") or {}).get("principles")]
        pids = list(dict.fromkeys(pid for s in stage_cols for pid in s.predicate["training"]["profiles"]["principles"]))
        example_rows = [[f"`{pid}`"] + [
            t.fig(s, ("predicate", "training", "profiles", "principles", pid, "examples"), label=f"{pid} examples ({s.method})")
            if pid in s.predicate["training"]["profiles"]["principles"] else "—" for s in stage_cols] for pid in pids]
        profile_names = ", ".join(prof.names) if prof is not None else "none given"
        return f"""# Algorithm filing dossier: {info.service_name or info.model_name or Path(m.head.model_dir).name}

| item | value |
|---|---|
| Service | {info.service_name or '_not declared_'} ({info.service_form or 'form not declared'}) |
| Filing entity | {info.organisation or '_not declared_'} |
| Contact | {info.contact or '_not declared_'} |
| Model licence | {info.license or '_not declared_'} |
| Users | {info.users or '_not declared_'} |
| Filing number | {info.filing_number or '_not yet filed_'} |
| Model | `{m.head.model_dir}` — root digest `sha256:{m.head.root_digest[:16]}…` |
| Provenance statement | `sha256:{m.head.statement_digest}` ({'signatures verified' if m.head.verified else 'not verified in this run'}) |
| Constitution | {t.fig(m.head, ('predicate', 'constitution', 'name'), label='constitution name')} {t.fig(m.head, ('predicate', 'constitution', 'version'), label='constitution version')} (`{t.fig(m.head, ('predicate', 'constitution', 'digest'), fmt=lambda v: v[:23] + '…', label='constitution digest')}`) |
| Compliance profiles | {profile_names} |

## 1. Basic principle of the algorithm

{self._basic_principle()}

## 2. Data sources, lineage and scale

{_table(['stage', 'dataset', 'produced by', 'records', 'sha256', 'source prompts sha256'], data_rows) if data_rows else '_No datasets recorded in the seal._'}

Training examples per principle (from the absorption profiles recorded at training time):

{_table(['principle'] + [self._stage_name(s) for s in stage_cols], example_rows) if example_rows else '_none recorded_'}

## 3. Labelling and tagging rules

- **Training-data labels.** {self._labelling_text()}
- **Content labels at serving time** ({profile_names}): {self._label_text()}

## 4. Algorithmic strategy

{self._pipeline_section()}

## 5. Safety measures at each layer

1. **Constitution** — {len(self.constitution.hard_constraints)} hard constraint(s) at the top of the priority order
   ({', '.join(f'`{p.id}`' for p in self.constitution.hard_constraints) or 'none'}); principles ordered
   {' > '.join(x.id for x in self.constitution.tiers)}.
2. **Training** — {self._training_safety_text()}; evaluations:

{self._evaluation_section()}

3. **Model integrity** — every model file signed (OpenSSF model-signing) and bound to a signed in-toto provenance
   statement; the gateway can refuse to serve a model whose seal does not verify.
4. **Input and output classifiers** —

{self._guard_section()}

5. **Gateway controls** —

{self._runtime_section()}
{self._assessment_section()}
## 6. Log retention

{chr(10).join('- ' + r for r in retention) if retention else '- _No gateway configuration or profile given: retention is unlimited by default._'}
- Every request and decision is appended to a hash-chained audit log (RFC 6962 leaves, signed Merkle checkpoints);
  purging drops content but keeps the hashes, so the log stays verifiable (`charter audit verify`).

## 7. Incident process

- **Detection:** trip rules ({', '.join(f"{r['kind']} ≥ {r['threshold']} in {r['window_seconds']:g} s" for r in (prof.trip_rules() if prof else [])) or 'as configured'}), violation reports (`POST /v1/violations`).
- **Containment:** the kill switch (`charter admin suspend [--model]`) stops new requests and running streams on every
  gateway process within a second; an incident is opened automatically when a rule trips.
- **Report:** `charter incident report ID` renders the timeline, affected requests and decisions from the audit log;
  `charter incident close ID` records the resolution.
- **Re-filing:** `charter check --baseline SEALED --candidate SEALED` flags releases whose base model, architecture,
  training data, hard constraints or guard thresholds changed (exit 1).

## 8. Provenance

{self._seal_section()}
"""

    # -- helpers -----------------------------------------------------------------------------------------
    def _architecture_text(self) -> str:
        """Architecture from the signed config.json (or adapter_config.json), traced to its sha256."""
        m, t = self.model, self.trace
        a, src = m.architecture, m.architecture_file
        if not a or src is None:
            return "architecture not recorded (no config.json)"

        def f(key, fmt=str):
            return t.file_fig(key, a.get(key), src["file"], src["sha256"], fmt=fmt) if key in a else "?"

        if m.is_adapter:
            return (f"{f('peft_type')} adapter (rank {f('r')}, alpha {f('lora_alpha')}, targets "
                    f"{f('target_modules', lambda v: ', '.join(sorted(v)) if isinstance(v, list) else str(v))}) on "
                    f"{f('base_model_name_or_path')}; {self._parameters_text('adapter parameters')}")
        return (f"{f('model_type')} decoder-only transformer, {f('num_hidden_layers')} blocks, hidden size "
                f"{f('hidden_size')}, vocabulary {f('vocab_size')}, {self._parameters_text('parameters')}")

    def _parameters_text(self, what: str) -> str:
        n = self._parameter_count()
        if n is None:
            return f"{what} not counted"
        import hashlib

        # Named by the weight files' digests in the signed manifest (no re-hashing of the weights).
        names = sorted(p.name for p in Path(self.model.head.model_dir).glob("*.safetensors"))
        signed = [self.model.file_digests.get(name) for name in names]
        digest = hashlib.sha256(b"".join(bytes.fromhex(d) for d in signed)).hexdigest() if all(signed) else None
        return self.trace.file_fig(what, n, ", ".join(names), digest, fmt=lambda v: f"{v:,} {what}")

    def _labelling_text(self) -> str:
        tasks = {(d.get("lineage") or {}).get("task") for d in self.model.datasets()}
        out = []
        if "sl-cai/critique-revise" in tasks:
            out.append("SL-CAI: each prompt's answer is critiqued and revised by the critic model under a principle sampled "
                       "from the constitution; the revision is the training target (the critique and revision requests are "
                       "the constitution's, recorded in the statement's constitution text).")
        if "rlaif/preferences" in tasks:
            out.append("RLAIF: the judge model compares two answers under a sampled principle's multiple-choice question; "
                       "the probability it gives the preferred answer is kept as a soft label (`p_chosen`) and pairs within "
                       "the recorded margin of a tie are dropped.")
        if not out:
            return "no Charter labelling stage is recorded in the seal (datasets, if any, came from elsewhere)."
        return " ".join(out) + " The critic, judge and sampling settings are in section 4."

    def _training_safety_text(self) -> str:
        stages = [s for s in self.model.stages_oldest_first() if s.predicate.get("training")]
        if not stages:
            return "no training stage is recorded in the seal"
        routed = [s for s in stages if ((s.predicate["training"].get("routing") or {}).get("enabled"))]
        parts = [("depth-selective routing on for " + ", ".join(self._stage_name(s) for s in routed)) if routed
                 else "depth-selective routing off"]
        if any((s.predicate["training"].get("profiles") or {}).get("principles") for s in stages):
            parts.append("per-principle absorption profiles recorded (section 2 of the alignment documentation)")
        return "; ".join(parts)

    def _basic_principle(self) -> str:
        """What was done to the model, stated only as far as the seals record it."""
        m = self.model
        stages = m.stages_oldest_first()
        tasks = {(d.get("lineage") or {}).get("task") for d in m.datasets()}
        methods = [s.method for s in stages if s.method]
        out = [f"A {self._architecture_text()}."]
        base = base_description(m.base_model)
        out.append(f"Trained from **{base}**." if base else
                   "The base model is **not recorded** in the seals read here" + (" (lineage incomplete)." if m.truncated else "."))
        steps = []
        if "sl-cai/critique-revise" in tasks:
            steps.append("supervised Constitutional AI data (SL-CAI): the model's answers to prompts were critiqued and "
                         "revised by a critic model under principles sampled from the written constitution")
        if "sft" in methods:
            steps.append("supervised fine-tuning (SFT) on that data" if "sl-cai/critique-revise" in tasks else "supervised fine-tuning (SFT)")
        if "rlaif/preferences" in tasks:
            steps.append("AI preference labels (RLAIF): a judge model reading the constitution chose which of two answers "
                         "better follows a sampled principle")
        if "dpo" in methods:
            steps.append("direct preference optimisation (DPO) on those preferences" if "rlaif/preferences" in tasks
                         else "direct preference optimisation (DPO)")
        out.append(("Alignment as recorded: " + "; then ".join(steps) + ".") if steps else
                   "No training stage is recorded in the seal: the model is documented as sealed, not as trained by Charter.")
        routed = [s for s in stages if ((s.predicate.get("training") or {}).get("routing") or {}).get("enabled")]
        if routed:
            out.append("Depth-selective gradient routing was on for " + ", ".join(self._stage_name(s) for s in routed)
                       + ": each principle's training signal updated only the transformer blocks its constitution entry names.")
        elif methods:
            out.append("Depth-selective gradient routing was off.")
        out.append("Stages as sealed: " + " → ".join(self._stage_name(s) for s in stages) + ".")
        return "\n\n".join(out)

    def _label_text(self) -> str:
        prof = self.runtime["profile"]
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
            parts.append(f"statistical token watermark ({prof.get('watermark.method') or 'kirchenbauer'}, local models)")
        if prof.get("disclosure.at_session_start") or prof.get("disclosure.every_minutes"):
            parts.append("AI-disclosure notice" + (f" every {prof.get('disclosure.every_minutes'):g} min" if prof.get("disclosure.every_minutes") else ""))
        return "; ".join(parts) + "." if parts else "none required by these profiles."

    def _parameter_count(self) -> int | None:
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

    def _assessment_binding(self) -> str:
        """Whether the attached assessment is of these weights: by the seal's root digest, else by path."""
        a, m = self.assessment, self.model
        model = a.get("model") or {}
        root = str((model.get("seal") or {}).get("root_digest") or "").removeprefix("sha256:")
        if root == m.head.root_digest:
            return "it records this model's root digest"
        spec = str(model.get("spec") or "")
        if spec.startswith("hf:") and Path(spec[3:]).resolve() == Path(m.head.model_dir).resolve():
            return "**bound by path only**: it does not record the weights' digest, so a retrained model at the same path would not show"
        return f"**WARNING: it assessed another model** (`{spec or 'unknown'}`), not `{m.head.model_dir}`"

    def _assessment_section(self) -> str:
        """A `charter assess` run, its figures traced to assessment.json's sha256."""
        a = self.assessment
        if not a:
            return ""
        t, f, h = self.trace, a["_file"], a["_sha256"]
        rows = []
        for c in a.get("checks", []):
            share, ci = c.get("share"), (c.get("ci95") or [None, None])[:2]
            bound = "≥" if c.get("bound") == "min" else "≤"
            name = c.get("id", "?")
            shown = "—" if share is None else t.file_fig(f"assessment {name} share", [share, ci], f, h, source="assessment",
                                                         fmt=lambda v: _share(v[0]) + (f" ({_share(v[1][0])}–{_share(v[1][1])})"
                                                                                        if v[1][0] is not None else ""))
            rows.append([f"{c.get('section', '')} {c.get('title', name)}".strip(),
                         t.file_fig(f"assessment {name} n", [c.get("n", 0), c.get("required_n")], f, h, source="assessment",
                                    fmt=lambda v: f"{v[0]} / {v[1]}"),
                         shown, f"{bound} {_share(c.get('threshold'))}",
                         t.file_fig(f"assessment {name} verdict", c.get("verdict", "?"), f, h, source="assessment")])
        conclusion = (a.get("conclusion") or {}).get("verdict", "?")
        return (f"\n**Pre-launch safety assessment** (`charter assess`, {f}, sha256 `{h[:16]}…`, profiles "
                f"{', '.join(a.get('profiles', [])) or 'none'}): conclusion **{conclusion}**; {self._assessment_binding()}.\n\n"
                + _table(["check", "samples / required", "share (95% CI)", "threshold", "verdict"], rows)
                + f"\n\n{a.get('caveat', '')}\n")

    def _image_name(self, s: SealedStage) -> str:
        k = self.model.stages_oldest_first().index(s)
        return f"{k + 1}-{s.method or 'stage'}-profiles.png"  # iterated stages of one method stay distinct

    def _profile_images(self) -> str:
        out = []
        for s in self.model.stages_oldest_first():
            png = Path(s.model_dir) / "profiles.png"
            if png.is_file():
                out.append(f"![absorption profiles, {self._stage_name(s)}](images/{self._image_name(s)})")
        return ("\n" + "\n\n".join(out) + "\n") if out else ""

    def build(self) -> dict:
        c = self.config
        text = {"model-card": self.model_card, "alignment": self.alignment, "filing": self.filing}[c.kind]()
        out = Path(c.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = {"model-card": "README", "alignment": "alignment", "filing": "filing"}[c.kind]
        written = {}
        if c.kind == "alignment":
            for s in self.model.stages_oldest_first():
                png = Path(s.model_dir) / "profiles.png"
                if png.is_file():
                    (out / "images").mkdir(exist_ok=True)
                    tmp = out / "images" / (self._image_name(s) + ".tmp")
                    shutil.copyfile(png, tmp)
                    tmp.replace(out / "images" / self._image_name(s))
        if "md" in c.formats:
            written["md"] = write_text_atomic(out / f"{stem}.md", text)
        if "html" in c.formats:
            written["html"] = write_text_atomic(out / f"{stem}.html", to_html(text, title=f"{c.kind}: {Path(self.model.head.model_dir).name}"))
        import hashlib

        # The trace names the documents it traces, so a document and a stale trace cannot be paired.
        documents = {Path(v).name: hashlib.sha256(Path(v).read_bytes()).hexdigest() for v in written.values()}
        trace = {"document": c.kind, "documents_sha256": documents, "model_dir": self.model.head.model_dir,
                 "statement_digest": self.model.head.statement_digest, "verified": self.model.head.verified,
                 "lineage_truncated": self.model.truncated, "figures": self.trace.items}
        written["trace"] = write_text_atomic(out / f"{stem}.trace.json", json.dumps(trace, indent=2, default=str) + "\n")
        return {"kind": c.kind, "files": {k: str(v) for k, v in written.items()}, "figures": len(self.trace.items),
                "verified": self.model.head.verified}


_GENERIC_RUNTIME = """Served through `charter serve`: kill switch, input guard, streaming output guard, signed receipts and a
hash-chained audit log on every request."""

_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.92rem}th,td{border:1px solid #ccc;padding:.3rem .6rem;vertical-align:top}
th{background:#f3f3f3}code{background:#f5f5f5;padding:0 .2rem;border-radius:3px}pre{background:#f5f5f5;padding:.8rem;overflow:auto}
img{max-width:100%}.front{background:#fafafa;border:1px solid #ddd;padding:.5rem 1rem;font-size:.85rem}
@media print{body{max-width:none}}"""


def to_html(markdown_text: str, *, title: str) -> str:
    """Markdown -> a standalone HTML page (print it to PDF from any browser)."""
    import html

    from markdown_it import MarkdownIt

    front = ""
    if markdown_text.startswith("---\n"):
        end = markdown_text.index("\n---\n", 4)
        front = f'<pre class="front">{html.escape(markdown_text[4:end])}</pre>\n'
        markdown_text = markdown_text[end + 5:]
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head>\n<body>\n{front}{body}</body></html>\n")
