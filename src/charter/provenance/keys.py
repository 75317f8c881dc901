"""EC P-256 signing keys (the curve model-signing and DSSE verifiers expect).

The private key is PKCS#8 PEM encrypted with the passphrase (never stored, printed or logged);
the public key is plain SubjectPublicKeyInfo PEM. A key's id is the sha256 of its DER public key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from charter.errors import InputError

PRIVATE, PUBLIC = "private_key.pem", "public_key.pem"
PASSPHRASE_ENV = "CHARTER_KEY_PASSPHRASE"


def generate_keypair(out: str | Path, passphrase: bytes, *, overwrite: bool = False) -> tuple[Path, Path]:
    out = Path(out)
    priv, pub = out / PRIVATE, out / PUBLIC
    if not passphrase:
        raise InputError(f"an empty passphrase would leave the private key unencrypted; set {PASSPHRASE_ENV}", source="passphrase")
    if not overwrite and (priv.exists() or pub.exists()):
        raise InputError("already holds a key pair; refusing to overwrite it (pass --overwrite)", source=str(out))
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(passphrase))
    # Created with owner-only permissions before any byte is written.
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def load_private_key(path: str | Path, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
    p = Path(path)
    if not p.is_file():
        raise InputError("no such private key file", source=str(p))
    data = p.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, passphrase or None)
    except TypeError:
        # Encrypted key without a passphrase, or a passphrase for an unencrypted key.
        raise InputError(f"the private key is encrypted: set {PASSPHRASE_ENV} or enter the passphrase", source=str(p)) from None
    except ValueError as exc:
        msg = "wrong passphrase for this private key" if b"ENCRYPTED" in data else f"not a PEM private key ({exc})"
        raise InputError(msg, source=str(p)) from None
    except UnsupportedAlgorithm as exc:
        raise InputError(f"unsupported key: {exc}", source=str(p)) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InputError("not an elliptic-curve private key (use charter keys generate)", source=str(p))
    return key


def load_public_key(path: str | Path) -> ec.EllipticCurvePublicKey:
    p = Path(path)
    if not p.is_file():
        raise InputError("no such public key file", source=str(p))
    try:
        key = serialization.load_pem_public_key(p.read_bytes())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"not a PEM public key ({exc})", source=str(p)) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InputError("not an elliptic-curve public key", source=str(p))
    return key


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
