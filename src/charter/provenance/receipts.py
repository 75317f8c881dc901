"""Signed response receipts: (statement digest, request id, sha256 of prompt and of output, time).

A gateway signs one per answer with a runtime key; anyone with the public key can later show that
this sealed model produced that output for that prompt at that time, without storing the texts.
The statement digest is the seal the gateway verified at start; ``unverified`` or ``unsealed``
otherwise (see UNATTESTED).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from charter.core.clock import now
from charter.core.errors import InputError, VerificationError
from charter.provenance.dsse import read_envelope_json, sign_envelope, verify_envelope
from charter.provenance.keys import load_public_key

RECEIPT_TYPE = "application/vnd.charter.receipt.v1+json"
# What a receipt's statement_digest says when the gateway did not verify a seal at start: no seal at
# all, or a charter-seal/ directory nobody checked (it is never named, since anyone could write it).
UNATTESTED = ("unverified", "unsealed")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sign_receipt(
    private_key: ec.EllipticCurvePrivateKey,
    *,
    statement_digest: str,
    request_id: str,
    prompt: str,
    output: str,
    time: str | None = None,
) -> dict:
    body = {
        "statement_digest": statement_digest,
        "request_id": request_id,
        "prompt_sha256": sha256_text(prompt),
        "output_sha256": sha256_text(output),
        "time": time or now(),
    }
    return sign_envelope(json.dumps(body, sort_keys=True, separators=(",", ":")).encode(), RECEIPT_TYPE, private_key)


def verify_receipt(
    receipt_path: str | Path,
    public_key_path: str | Path,
    *,
    prompt: str | None = None,
    output: str | None = None,
    statement_digest: str | None = None,
) -> dict:
    p = Path(receipt_path)
    if not p.is_file():
        raise InputError("no such receipt file", source=str(p))
    try:
        envelope = json.loads(p.read_text())
    except ValueError:
        raise InputError("receipt is not JSON", source=str(p)) from None
    if envelope.get("payloadType") != RECEIPT_TYPE:
        raise VerificationError(f"{p} is not a Charter receipt (payloadType {envelope.get('payloadType')!r})")
    body = read_envelope_json(
        verify_envelope(envelope, load_public_key(public_key_path), what="receipt"), what="receipt"
    )
    for name, text in (("prompt", prompt), ("output", output)):
        if text is not None and sha256_text(text) != body[f"{name}_sha256"]:
            raise VerificationError(f"the {name} given is not the one this receipt was signed for")
    if statement_digest is not None:
        got = body.get("statement_digest")
        if got in UNATTESTED:
            raise VerificationError(
                f"the receipt names no sealed model: the gateway served a model whose seal it had not "
                f"verified at start (statement digest {got!r})"
            )
        if statement_digest.removeprefix("sha256:") != got:
            raise VerificationError("the receipt was signed for another sealed model (statement digest differs)")
    return body
