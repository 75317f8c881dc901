"""``charter profiles list|show`` and ``charter watermark detect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from charter.cli._common import console, handle_errors
from charter.core.errors import InputError

profiles_app = typer.Typer(help="Compliance profiles: disclosures, labels, watermarks, retention, safeguards.", no_args_is_help=True)
watermark_app = typer.Typer(help="Implicit watermarks in generated text.", no_args_is_help=True)


@profiles_app.command("list")
@handle_errors
def profiles_list() -> None:
    """The bundled profiles."""
    from charter.policy.profiles import BUNDLED, load_profile

    for name in BUNDLED:
        typer.echo(f"{name}\t{load_profile(name).description}")


@profiles_app.command("show")
@handle_errors
def profiles_show(
    names: List[str] = typer.Argument(..., help="Profile names or .toml paths; several compose to the stricter setting of each."),
    remote: Optional[bool] = typer.Option(None, "--remote/--local", help="Whether the upstream is remote (watermarks need a local one)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The effective settings and the profile each one came from."""
    from charter.policy.profiles import compose

    e = compose(names)
    rows = e.describe(local_upstream=None if remote is None else not remote)
    if as_json:
        typer.echo(json.dumps({"profiles": e.names, "settings": [{"setting": k, "value": v, "source": s} for k, v, s in rows]},
                              indent=2, ensure_ascii=False))
        return
    table = Table(title=f"effective compliance settings: {' + '.join(e.names)}")
    table.add_column("setting", no_wrap=True)
    table.add_column("value")
    table.add_column("from")
    for k, v, s in rows:
        table.add_row(k, v, s)
    console.print(table)
    console.print("Watermarks apply to local upstreams only: a remote server's logits are not available, so its "
                  "answers get the explicit label but no implicit mark.", highlight=False)


@watermark_app.command("detect")
@handle_errors
def watermark_detect(
    file: Path = typer.Option(..., "--file", "-f", help="Text file to test."),
    model: str = typer.Option("embedded", "--model", help="The model that would have generated it (its tokenizer and vocabulary)."),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="The deployment's watermark key file (hex, as the gateway "
                                             "writes it; `charter watermark key` names it)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="gateway.toml: use its watermark key file."),
    greenlist_ratio: float = typer.Option(0.25, "--greenlist-ratio"),
    z_threshold: float = typer.Option(4.0, "--z-threshold", help="Verdict threshold on the z-score."),
) -> None:
    """Green-list watermark test: z-score, p-value and verdict (exit 0 either way)."""
    from charter.gateway.watermark import detect

    if not file.is_file():
        raise InputError("no such file", source=str(file))
    secret = _watermark_secret(key_file, config)
    r = detect(file.read_text(encoding="utf-8"), model, hashing_key=secret, greenlist_ratio=greenlist_ratio,
               z_threshold=z_threshold)
    typer.echo(json.dumps(r))
    console.print(f"{'WATERMARKED' if r['watermarked'] else 'no watermark detected'}: z = {r['z_score']:.2f}, "
                  f"p = {r['p_value']:.2e} over {r['tokens']} tokens ({r['green_fraction']:.0%} green)", highlight=False)


def _watermark_secret(key_file: Optional[Path], config: Optional[Path]) -> bytes:
    from charter.provenance.keys import load_secret

    if key_file is None and config is None:
        raise InputError("name the watermark key: --key-file FILE or --config gateway.toml", source="--key-file")
    if key_file is None:
        from charter.cli.gateway import _config

        key_file = Path(_config(config).watermark_key_path())
    return load_secret(key_file, "the watermark key", create=False)


@watermark_app.command("key")
@handle_errors
def watermark_key(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="gateway.toml (default: ./gateway.toml)."),
) -> None:
    """Name the watermark key file a gateway uses and its id (the key itself is never printed)."""
    from charter.cli.gateway import _config
    from charter.provenance.keys import load_secret, secret_id

    path = _config(config).watermark_key_path()
    typer.echo(json.dumps({"key_file": path, "key_id": secret_id(load_secret(path, "the watermark key", create=False))}))


def register(app: typer.Typer) -> None:
    app.add_typer(profiles_app, name="profiles")
    app.add_typer(watermark_app, name="watermark")
