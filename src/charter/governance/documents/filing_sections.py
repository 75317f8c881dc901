"""The filing dossier's description of the model (its basic principle, architecture, labelling
and training safety), read from the seals; a part of ``Sections``."""

from __future__ import annotations

import json
from pathlib import Path

from charter.governance.sealed import base_description


class FilingSections:
    """Sections of ``Sections`` (it provides ``model``, ``trace`` and ``stage_name``) that
    describe how the model was built."""

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
