"""``charter docs model-card|alignment|filing`` and ``charter check``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from charter.cli._common import console, handle_errors
from charter.core.errors import InputError

docs_app = typer.Typer(help="Documents generated from a sealed model: model card, alignment documentation, filing dossier.",
                       no_args_is_help=True)


def _docs(kind: str, model_dir: Path, out: Path, public_key: Optional[Path], info: Optional[Path],
          gateway_config: Optional[Path], profile: List[str], assessment: Optional[Path], fmt: List[str]) -> None:
    from charter.governance.documents import DocsConfig, DocumentBuilder

    cfg = DocsConfig(kind=kind, model_dir=str(model_dir), out=str(out), public_key=str(public_key) if public_key else None,
                     info=str(info) if info else None, gateway_config=str(gateway_config) if gateway_config else None,
                     profiles=tuple(profile), assessment=str(assessment) if assessment else None,
                     formats=tuple(fmt) or ("md", "html"))
    r = DocumentBuilder(cfg).build()
    note = "" if r["verified"] else "  (seal NOT verified: pass --public-key)"
    console.print(f"{kind}: {', '.join(r['files'].values())} — {r['figures']} figures traced to the sealed statement{note}",
                  highlight=False, soft_wrap=True)


def _options():
    return dict(
        model_dir=typer.Argument(..., help="A sealed model directory."),
        out=typer.Option(..., "--out", "-o", help="Output directory."),
        public_key=typer.Option(None, "--public-key", "-p", help="Verify every seal first (recommended)."),
        info=typer.Option(None, "--info", help="TOML with what only the deployer can declare (organisation, licence, intended use, service)."),
        gateway_config=typer.Option(None, "--gateway-config", help="gateway.toml: guard, profiles, retention and trip rules to document."),
        profile=typer.Option([], "--profile", help="Compliance profile(s) when there is no gateway config (repeatable)."),
        assessment=typer.Option(None, "--assessment", help="A `charter assess` output directory to include."),
        fmt=typer.Option([], "--format", help="md and/or html (default both; print the HTML to PDF from a browser)."),
    )


def _command(kind: str, doc: str):
    o = _options()

    @handle_errors
    def command(model_dir: Path = o["model_dir"], out: Path = o["out"], public_key: Optional[Path] = o["public_key"],
                info: Optional[Path] = o["info"], gateway_config: Optional[Path] = o["gateway_config"],
                profile: List[str] = o["profile"], assessment: Optional[Path] = o["assessment"],
                fmt: List[str] = o["fmt"]) -> None:
        _docs(kind, model_dir, out, public_key, info, gateway_config, profile, assessment, fmt)

    command.__doc__ = doc
    command.__name__ = kind.replace("-", "_")
    return command


docs_app.command("model-card")(_command("model-card", "Hugging Face model card (README.md with YAML metadata)."))
docs_app.command("alignment")(_command(
    "alignment", "Alignment documentation: constitution, per-principle training evidence, RLAIF pipeline, evaluations, provenance."))
docs_app.command("filing")(_command(
    "filing", "Algorithm-filing dossier: basic principle, data, labelling rules, strategy, safety layers, retention, incidents."))


@handle_errors
def check(
    baseline: Path = typer.Option(..., "--baseline", help="The sealed model last filed/released."),
    candidate: Path = typer.Option(..., "--candidate", help="The sealed model about to be released."),
    rules: Optional[Path] = typer.Option(None, "--rules", help="Rules TOML (thresholds and refile/review/ignore per rule)."),
    public_key: Optional[Path] = typer.Option(None, "--public-key", "-p", help="Verify both seals first."),
    allow_unrelated: bool = typer.Option(False, "--allow-unrelated", help="Compare models with no constitution, base or seal in common."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the result as JSON here."),
) -> None:
    """Does the candidate release need re-filing or review? Exit 1 with the list when it does."""
    from charter.governance.check import CheckConfig, ReleaseCheck

    if out is not None and out.is_dir():
        raise InputError("is a directory; --out takes a file name (e.g. check.json)", source=str(out))
    result = ReleaseCheck(CheckConfig(baseline=str(baseline), candidate=str(candidate), rules=str(rules) if rules else None,
                                      public_key=str(public_key) if public_key else None,
                                      allow_unrelated=allow_unrelated)).run()
    if out:
        from charter.core.io import write_text_atomic

        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        for line in result.lines():
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    app.add_typer(docs_app, name="docs")
    app.command("check")(check)
