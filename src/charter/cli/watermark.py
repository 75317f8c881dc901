"""``charter watermark detect|key``: implicit watermarks in generated text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors
from charter.core.errors import InputError

app = typer.Typer(help="Implicit watermarks in generated text.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="watermark")


@app.command("detect")
@handle_errors
def watermark_detect(
    file: Path = typer.Option(..., "--file", "-f", help="Text file to test."),
    model: str = typer.Option(
        "embedded", "--model", help="The model that would have generated it (its tokenizer and vocabulary)."
    ),
    key_file: Optional[Path] = typer.Option(
        None,
        "--key-file",
        help="The deployment's watermark key file (hex, as the gateway writes it; `charter watermark key` names it).",
    ),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="gateway.toml: use its watermark key file."),
    greenlist_ratio: float = typer.Option(0.25, "--greenlist-ratio"),
    z_threshold: float = typer.Option(4.0, "--z-threshold", help="Verdict threshold on the z-score."),
) -> None:
    """Green-list watermark test: z-score, p-value and verdict (exit 0 either way)."""
    from charter.gateway.watermark import detect

    if not file.is_file():
        raise InputError("no such file", source=str(file))
    secret = _watermark_secret(key_file, config)
    r = detect(
        file.read_text(encoding="utf-8"),
        model,
        hashing_key=secret,
        greenlist_ratio=greenlist_ratio,
        z_threshold=z_threshold,
    )
    typer.echo(json.dumps(r))
    console.print(
        f"{'WATERMARKED' if r['watermarked'] else 'no watermark detected'}: z = {r['z_score']:.2f}, "
        f"p = {r['p_value']:.2e} over {r['tokens']} tokens ({r['green_fraction']:.0%} green)",
        highlight=False,
    )


def _watermark_secret(key_file: Optional[Path], config: Optional[Path]) -> bytes:
    from charter.provenance.keys import load_secret

    if key_file is None and config is None:
        raise InputError("name the watermark key: --key-file FILE or --config gateway.toml", source="--key-file")
    if key_file is None:
        from charter.cli._gateway import gateway_config as _config

        key_file = Path(_config(config).watermark_key_path())
    return load_secret(key_file, "the watermark key", create=False)


@app.command("key")
@handle_errors
def watermark_key(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="gateway.toml (default: ./gateway.toml)."),
) -> None:
    """Name the watermark key file a gateway uses and its id (the key itself is never printed)."""
    from charter.cli._gateway import gateway_config as _config
    from charter.provenance.keys import load_secret, secret_id

    path = _config(config).watermark_key_path()
    typer.echo(
        json.dumps({"key_file": path, "key_id": secret_id(load_secret(path, "the watermark key", create=False))})
    )
