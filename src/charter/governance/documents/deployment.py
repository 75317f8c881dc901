"""What surrounds the model when it is served (the gateway configuration, the compliance profiles,
the labels they require) and an attached pre-launch assessment: not part of the seal, so their figures are traced
to those files' digests; a part of ``Sections``."""

from __future__ import annotations

from pathlib import Path

from charter.governance.documents.markdown import _share, _table

_GENERIC_RUNTIME = (
    "Served through `charter serve`: kill switch, input guard, streaming output guard, signed receipts and a\n"
    "hash-chained audit log on every request."
)


class DeploymentSections:
    """Sections of ``Sections`` (it provides ``model``, ``runtime``, ``assessment``,
    ``gateway_config`` and ``trace``) about the runtime and the assessment."""

    def runtime_section(self) -> str:
        g, prof, t = self.runtime.gateway, self.runtime.profile, self.trace
        if g is None and prof is None:
            return (
                "_No gateway configuration or compliance profile was given (`--gateway-config`, `--profile`); "
                "the runtime layers are described generically._\n\n" + _GENERIC_RUNTIME
            )
        rows = self._gateway_rows(g) if g is not None else []
        if prof is not None:
            names = "+".join(prof.names)
            for k, v, src in prof.describe():
                rows.append([k, t.file_fig(k, v, f"compliance profiles {names}", "", source="profile"), src])
        return _table(["setting", "value", "source"], rows)

    def _gateway_rows(self, g) -> list[list[str]]:
        """The gateway config's (``g``) settings that matter to a reader, traced to the config file."""
        t, f, h = self.trace, self.gateway_config, self.runtime.gateway_sha256

        def gfig(label, value, fmt=str):
            return t.file_fig(label, value, f, h, fmt=fmt, source="gateway-config")

        rows = [
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
        return rows

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
