"""``charter docs model-card|alignment|filing``: documents generated from a sealed model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors

app = typer.Typer(
    help="Documents generated from a sealed model: model card, alignment documentation, filing dossier.",
    no_args_is_help=True,
)


def _docs(
    kind: str,
    model_dir: Path,
    out: Path,
    public_key: Optional[Path],
    info: Optional[Path],
    gateway_config: Optional[Path],
    profile: list[str],
    assessment: Optional[Path],
    fmt: list[str],
) -> None:
    from charter.governance.documents import DocsConfig, DocumentBuilder

    cfg = DocsConfig(
        kind=kind,
        model_dir=str(model_dir),
        out=str(out),
        public_key=str(public_key) if public_key else None,
        info=str(info) if info else None,
        gateway_config=str(gateway_config) if gateway_config else None,
        profiles=tuple(profile),
        assessment=str(assessment) if assessment else None,
        formats=tuple(fmt) or ("md", "html"),
    )
    r = DocumentBuilder(cfg).build()
    note = "" if r["verified"] else "  (seal NOT verified: pass --public-key)"
    console.print(
        f"{kind}: {', '.join(r['files'].values())} — {r['figures']} figures traced to the sealed statement{note}",
        highlight=False,
        soft_wrap=True,
    )


def _options():
    return dict(
        model_dir=typer.Argument(..., help="A sealed model directory."),
        out=typer.Option(..., "--out", "-o", help="Output directory."),
        public_key=typer.Option(None, "--public-key", "-p", help="Verify every seal first (recommended)."),
        info=typer.Option(
            None,
            "--info",
            help="TOML with what only the deployer can declare (organisation, licence, intended use, service).",
        ),
        gateway_config=typer.Option(
            None, "--gateway-config", help="gateway.toml: guard, profiles, retention and trip rules to document."
        ),
        profile=typer.Option(
            [], "--profile", help="Compliance profile(s) when there is no gateway config (repeatable)."
        ),
        assessment=typer.Option(None, "--assessment", help="A `charter assess` output directory to include."),
        fmt=typer.Option([], "--format", help="md and/or html (default both; print the HTML to PDF from a browser)."),
    )


def _command(kind: str, doc: str):
    o = _options()

    @handle_errors
    def command(
        model_dir: Path = o["model_dir"],
        out: Path = o["out"],
        public_key: Optional[Path] = o["public_key"],
        info: Optional[Path] = o["info"],
        gateway_config: Optional[Path] = o["gateway_config"],
        profile: list[str] = o["profile"],
        assessment: Optional[Path] = o["assessment"],
        fmt: list[str] = o["fmt"],
    ) -> None:
        _docs(kind, model_dir, out, public_key, info, gateway_config, profile, assessment, fmt)

    command.__doc__ = doc
    command.__name__ = kind.replace("-", "_")
    return command


app.command("model-card")(_command("model-card", "Hugging Face model card (README.md with YAML metadata)."))
app.command("alignment")(
    _command(
        "alignment",
        "Alignment documentation: constitution, per-principle training evidence, RLAIF pipeline, "
        "evaluations, provenance.",
    )
)
app.command("filing")(
    _command(
        "filing",
        "Algorithm-filing dossier: basic principle, data, labelling rules, strategy, safety layers, "
        "retention, incidents.",
    )
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="docs")
