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

from charter.core.errors import InputError

PRIVATE, PUBLIC = "private_key.pem", "public_key.pem"
PASSPHRASE_ENV = "CHARTER_KEY_PASSPHRASE"


def generate_keypair(out: str | Path, passphrase: bytes, *, overwrite: bool = False) -> tuple[Path, Path]:
    out = Path(out)
    priv, pub = out / PRIVATE, out / PUBLIC
    if not passphrase:
        raise InputError(
            f"an empty passphrase would leave the private key unencrypted; set {PASSPHRASE_ENV}", source="passphrase"
        )
    if not overwrite and (priv.exists() or pub.exists()):
        raise InputError("already holds a key pair; refusing to overwrite it (pass --overwrite)", source=str(out))
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(passphrase)
    )
    # Created with owner-only permissions before any byte is written.
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
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
        raise InputError(
            f"the private key is encrypted: set {PASSPHRASE_ENV} or enter the passphrase", source=str(p)
        ) from None
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


# -- a running service's own keys (the gateway's runtime key and watermark secret) ----------------
# Unlike the sealing key above these are unencrypted (a service must start unattended), so the file
# mode is the protection: created 0600 before any byte is written, refused when others can read it.


def check_private_file(path: str | Path, what: str) -> Path:
    """Refuse a secret file that group or others can read or write, or that git tracks (a key in a
    repository is published: whoever has a clone can sign with it)."""
    p = Path(path)
    mode = p.stat().st_mode & 0o777
    if mode & 0o077:
        raise InputError(
            f"{what} is readable by group/others (mode {mode:03o}); run `chmod 600 {p}` "
            f"(or delete it to create a new one)",
            source=str(p),
        )
    if _tracked_by_git(p):
        raise InputError(
            f"{what} is tracked by git, so it is published: delete it from the repository "
            f"(git rm) and start again to create a new one",
            source=str(p),
        )
    return p


def _tracked_by_git(p: Path) -> bool:
    import subprocess

    try:
        r = subprocess.run(
            ["git", "-C", str(p.parent), "ls-files", "--error-unmatch", "--", p.name], capture_output=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):  # no git here, or a hung one: nothing to learn
        return False
    return r.returncode == 0


def create_private_file(path: str | Path, data: bytes) -> bool:
    """Write ``data`` to a new file created 0600. False when it already exists, so several
    processes started together all end up reading the one file the first of them wrote: the data
    is written to a private temporary file first and then linked into place (atomic, and it fails
    if the name exists), so no process ever sees the file half written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists():
        return False
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, p)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def public_key_path(private_path: str | Path) -> Path:
    p = Path(private_path)
    return p.with_name(p.stem + ".pub.pem")


# Keys whose private half is public (committed to a repository): whoever has a copy can sign with
# them, so they are refused wherever they turn up (an old config, a deploy copy outside git).
PUBLISHED_KEY_IDS = frozenset(
    {
        # charter-runtime-key.pem, tracked until 2026-11-30
        "ea4575868db0256c0147629c73f1596f098ae1d169f38395d2660e1da884b2c6",
    }
)


def load_runtime_key(path: str | Path) -> ec.EllipticCurvePrivateKey:
    """A service's EC P-256 signing key (audit checkpoints, receipts), created on first use with a
    public key file beside it (``NAME.pub.pem``) for auditors to pin. An operator may supply an
    encrypted key instead; its passphrase comes from ``CHARTER_KEY_PASSPHRASE``."""
    p = Path(path)
    if not p.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        create_private_file(
            p,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
    check_private_file(p, "the runtime key")
    data = p.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # encrypted
        passphrase = os.environ.get(PASSPHRASE_ENV)
        if not passphrase:
            raise InputError(f"the runtime key is encrypted: set {PASSPHRASE_ENV}", source=str(p)) from None
        try:
            key = serialization.load_pem_private_key(data, password=passphrase.encode())
        except ValueError:
            raise InputError("wrong passphrase for the runtime key", source=str(p)) from None
    except (ValueError, UnsupportedAlgorithm):
        raise InputError("not a PEM private key", source=str(p)) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InputError("the runtime key must be an EC key (charter keys generate)", source=str(p))
    if key_id(key.public_key()) in PUBLISHED_KEY_IDS:
        raise InputError(
            "this runtime key was published in Charter's repository, so anyone can sign with it: delete it "
            "and start again to create a new one",
            source=str(p),
        )
    pub = public_key_path(p)
    if not pub.exists():  # for auditors: `charter audit verify --public-key` pins this key
        pub.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return key


SECRET_BYTES = 32  # 256 bits


def load_secret(path: str | Path, what: str, *, create: bool = True) -> bytes:
    """A random symmetric secret stored as hex in a 0600 file (created on first use from the
    operating system's CSPRNG); at least 128 bits are required of a file supplied by hand."""
    import secrets

    p = Path(path)
    if not p.exists():
        if not create:
            raise InputError(f"no such {what} file", source=str(p))
        create_private_file(p, (secrets.token_hex(SECRET_BYTES) + "\n").encode())
    check_private_file(p, what)
    text = p.read_text(encoding="ascii", errors="replace").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise InputError(f"{what} must be hex (as Charter writes it)", source=str(p)) from None
    if len(secret) < 16:
        raise InputError(f"{what} has {len(secret) * 8} bits; at least 128 are required", source=str(p))
    return secret


def secret_id(secret: bytes) -> str:
    """A name for a secret that reveals nothing of it (for logs and attestation)."""
    return hashlib.sha256(b"charter-secret-id:" + secret).hexdigest()[:16]
