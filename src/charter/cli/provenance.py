"""``charter seal``, ``charter verify``, ``charter lineage``, ``charter sign-receipt`` and
``charter verify-receipt``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors
from charter.cli.keys import passphrase as _passphrase
from charter.core.errors import InputError


def seal(
    model_dir: Path = typer.Argument(..., help="Model directory to seal (e.g. a charter train output)."),
    constitution: str = typer.Option(..., "--constitution", "-c", help="The constitution the model was trained under."),
    key: Path = typer.Option(..., "--key", "-k", help="Private key (charter keys generate)."),
    parent: Optional[Path] = typer.Option(
        None, "--parent", help="The sealed model this one was trained from (base -> SFT -> DPO)."
    ),
    data: list[Path] = typer.Option(
        [], "--data", help="Training data file(s); their run directories give the lineage."
    ),
    training: Optional[Path] = typer.Option(
        None, "--training", help="Training output with train_config/routing/profiles (default: MODEL_DIR if it is one)."
    ),
    eval_dirs: list[Path] = typer.Option(
        [], "--eval", help="Evaluation directories whose summaries go into the statement."
    ),
    guard: Optional[Path] = typer.Option(
        None,
        "--guard",
        help="The guard (charter guard train OUT) served with this model: "
        "its digest and thresholds go into the statement.",
    ),
    workers: Optional[int] = typer.Option(None, "--workers", help="Files hashed in parallel (default: one per core)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Seal again over an existing seal."),
) -> None:
    """Sign every model file (model-signing) and a provenance statement binding them to the constitution."""
    from charter.provenance import SealConfig, Sealer

    cfg = SealConfig(
        model_dir=str(model_dir),
        constitution=constitution,
        key=str(key),
        parent=str(parent) if parent else None,
        data=tuple(str(d) for d in data),
        training=str(training) if training else None,
        evals=tuple(str(e) for e in eval_dirs),
        guard=str(guard) if guard else None,
        max_workers=workers,
        overwrite=overwrite,
    )
    r = Sealer(cfg, passphrase=_passphrase()).seal()
    console.print(
        f"sealed {r['model_dir']} under {r['constitution']}\n  root digest      sha256:{r['root_digest']}\n"
        f"  statement digest sha256:{r['statement_digest']}\n  files: {r['signature']}, {r['statement']}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def verify(
    model_dir: Path = typer.Argument(..., help="A sealed model directory."),
    public_key: Path = typer.Option(..., "--public-key", "-p", help="The sealer's public key."),
    constitution: Optional[str] = typer.Option(
        None, "--constitution", "-c", help="Also check the model was sealed under this constitution."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the verified statement as JSON."),
) -> None:
    """Check every file digest, both signatures and their binding, and an adapter's base model (offline).
    Exit 1 names what failed."""
    from charter.provenance import verify_model

    v = verify_model(model_dir, public_key, constitution=constitution)
    if as_json:
        console.print_json(
            json.dumps({"root_digest": v.root_digest, "statement_digest": v.statement_digest, "statement": v.statement})
        )
    else:
        console.print("\n".join(v.summary_lines()), highlight=False, markup=False, soft_wrap=True)


def lineage(
    model_dir: Path = typer.Argument(..., help="A sealed model directory."),
    public_key: Optional[Path] = typer.Option(
        None, "--public-key", "-p", help="Verify every seal on the way (else only the recorded digests are checked)."
    ),
) -> None:
    """Walk the parents: base -> SFT -> DPO, each link checked against the digest its child recorded."""
    from charter.provenance import lineage as walk

    for depth, link in enumerate(walk(model_dir, public_key)):
        base = link["base_model"] or {}
        console.print(
            f"{'  ' * depth}{'└─ ' if depth else ''}{link['model_dir']}  [{link['method'] or 'model'}] "
            f"{link['constitution']}  statement sha256:{link['statement_digest'][:16]}…"
            f"{'  verified' if link['verified'] else ''}"
            f"{('  base ' + str(base.get('spec'))) if base else ''}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def sign_receipt(
    key: Path = typer.Option(..., "--key", "-k", help="Runtime private key."),
    statement_digest: str = typer.Option(
        ..., "--statement-digest", help="The sealed model's statement digest (charter verify prints it)."
    ),
    request_id: str = typer.Option(..., "--request-id", help="The request's id."),
    prompt_file: Path = typer.Option(..., "--prompt-file", help="The prompt as sent."),
    output_file: Path = typer.Option(..., "--output-file", help="The output as returned."),
    out: Path = typer.Option(..., "--out", "-o", help="Receipt file (DSSE JSON)."),
) -> None:
    """Sign a response receipt (the gateway does this per answer)."""
    from charter.provenance import load_private_key
    from charter.provenance import sign_receipt as sign

    for f in (prompt_file, output_file):
        if not f.is_file():
            raise InputError("no such file", source=str(f))
    receipt = sign(
        load_private_key(key, _passphrase()),
        statement_digest=statement_digest,
        request_id=request_id,
        prompt=prompt_file.read_text(encoding="utf-8"),
        output=output_file.read_text(encoding="utf-8"),
    )
    out.write_text(json.dumps(receipt, indent=2) + "\n")
    console.print(f"receipt: {out}", highlight=False)


def verify_receipt(
    receipt: Path = typer.Argument(..., help="A receipt file."),
    public_key: Path = typer.Option(..., "--public-key", "-p", help="The runtime public key."),
    prompt_file: Optional[Path] = typer.Option(None, "--prompt-file", help="Also check this was the prompt."),
    output_file: Optional[Path] = typer.Option(None, "--output-file", help="Also check this was the output."),
    statement_digest: Optional[str] = typer.Option(
        None,
        "--statement-digest",
        help="Also check the sealed model (hex or sha256:hex; a receipt saying unverified/unsealed fails).",
    ),
) -> None:
    """Verify a response receipt's signature (and, when given, the prompt, output and model)."""
    from charter.provenance import verify_receipt as check

    body = check(
        receipt,
        public_key,
        prompt=prompt_file.read_text(encoding="utf-8") if prompt_file else None,
        output=output_file.read_text(encoding="utf-8") if output_file else None,
        statement_digest=statement_digest,
    )
    from charter.provenance.receipts import UNATTESTED

    sd = str(body.get("statement_digest"))
    model = (
        f"model {sd}: the gateway had not verified a seal at start"
        if sd in UNATTESTED
        else f"model statement sha256:{sd[:16]}…"
    )
    console.print(
        f"receipt ok: request {body['request_id']} at {body['time']}, {model}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    for fn, name in (
        (seal, "seal"),
        (verify, "verify"),
        (lineage, "lineage"),
        (sign_receipt, "sign-receipt"),
        (verify_receipt, "verify-receipt"),
    ):
        app.command(name)(handle_errors(fn))
