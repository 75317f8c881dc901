"""``charter keys generate``: signing keys (EC P-256)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from charter.cli._common import console, handle_errors
from charter.core.errors import InputError

app = typer.Typer(help="Signing keys (EC P-256).", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="keys")


def passphrase(confirm: bool = False) -> bytes:
    """From CHARTER_KEY_PASSPHRASE, else an interactive prompt; never echoed or logged."""
    from charter.provenance.keys import PASSPHRASE_ENV

    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        if not sys.stdin.isatty():
            raise InputError(
                f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal to be asked", source="passphrase"
            )
        value = typer.prompt("Key passphrase", hide_input=True, confirmation_prompt=confirm)
    return value.encode()


@app.command("generate")
@handle_errors
def keys_generate(
    out: Path = typer.Option(..., "--out", "-o", help="Directory for private_key.pem (encrypted) and public_key.pem."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing key pair."),
) -> None:
    """Generate an EC P-256 key pair; the private key is encrypted with the passphrase."""
    from charter.provenance import generate_keypair
    from charter.provenance.keys import key_id, load_public_key

    priv, pub = generate_keypair(out, passphrase(confirm=True), overwrite=overwrite)
    console.print(
        f"private key: {priv} (encrypted, mode 600)\npublic key:  {pub}\nkey id: {key_id(load_public_key(pub))}",
        highlight=False,
    )
