"""DSSE envelopes (https://github.com/secure-systems-lab/dsse), ECDSA P-256 / SHA-256."""

from __future__ import annotations

import base64
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from charter.core.errors import VerificationError
from charter.provenance.keys import key_id

INTOTO = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-authentication encoding: what is actually signed."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_envelope(payload: bytes, payload_type: str, private_key: ec.EllipticCurvePrivateKey) -> dict:
    sig = private_key.sign(pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": [{"keyid": key_id(private_key.public_key()), "sig": base64.b64encode(sig).decode()}],
    }


def verify_envelope(envelope: dict, public_key: ec.EllipticCurvePublicKey, *, what: str = "envelope") -> bytes:
    """The payload, if one of the signatures verifies with this key; else VerificationError."""
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        payload_type = envelope["payloadType"]
        signatures = envelope["signatures"]
    except (KeyError, TypeError, ValueError):
        raise VerificationError(f"{what} is not a DSSE envelope") from None
    for s in signatures:
        try:
            public_key.verify(base64.b64decode(s["sig"]), pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
            return payload
        except (InvalidSignature, KeyError, TypeError, ValueError):
            continue
    if any(s.get("keyid") == key_id(public_key) for s in signatures if isinstance(s, dict)):
        raise VerificationError(f"{what}: the signature does not match its content (edited after signing)")
    raise VerificationError(f"{what} was not signed with this public key (wrong key)")


def read_envelope_json(payload: bytes, *, what: str) -> dict:
    try:
        return json.loads(payload)
    except ValueError:
        raise VerificationError(f"{what}: the signed payload is not JSON") from None
