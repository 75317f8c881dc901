"""Entries and checkpoints of the tamper-evident audit log: hash-chained entries, signed Merkle checkpoints, proofs.

Each entry's hash is the RFC 6962 leaf hash of its canonical bytes, which include the previous
entry's hash: editing, deleting, inserting or reordering an entry breaks the chain at that entry.
A checkpoint signs (tree size, Merkle root) with the gateway's key, so a log rewritten from some
entry on with recomputed hashes still fails against the signed root, and a regulator holding an
exported entry can check its inclusion proof against a checkpoint without the rest of the log.
Checkpoints form a chain: each signs its index, the previous checkpoint's digest and a consistency
proof from the previous signed root, so deleting, inserting or re-signing checkpoints breaks the
chain, and copies kept elsewhere (a witness, an auditor) pin the history. A purge is a signed
entry, the only thing that may leave earlier entries without content; an entry's hash covers its
header plus the sha256 of its body, so a purged entry's header is still bound to its hash.
Appends from several threads or processes are serialised by the database (SQLite: BEGIN
IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock), so there is one chain.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from charter.audit.merkle import leaf_hash
from charter.core import digests
from charter.core.errors import VerificationError
from charter.provenance.dsse import read_envelope_json, verify_envelope
from charter.provenance.keys import key_id

GENESIS = "0" * 64
LOG_ID = "charter-audit/1"
CHECKPOINT_TYPE = "application/vnd.charter.audit-checkpoint.v1+json"
PURGE_TYPE = "application/vnd.charter.audit-purge.v1+json"
PURGE_KIND = "admin.purge"
_PG_LOCK = 0x43484152  # "CHAR": the advisory lock that serialises appends on PostgreSQL
_PG_CHECKPOINT_LOCK = _PG_LOCK + 1  # one checkpointer at a time, so the checkpoint chain never forks


def canonical_json(obj) -> str:
    return digests.canonical_json(obj, default=str)


def canonical_entry(
    seq: int, time: str, tenant: str | None, kind: str, request_id: str | None, body: str, prev_hash: str
) -> bytes:
    """The bytes an entry's hash covers: a JSON array of its fields, a line feed, then its
    canonical JSON body (not re-escaped inside the header, which halves the hashing work)."""
    head = json.dumps([seq, time, tenant, kind, request_id, prev_hash], separators=(",", ":"), ensure_ascii=False)
    return (head + "\n" + body).encode("utf-8")


def legacy_entry(
    seq: int, time: str, tenant: str | None, kind: str, request_id: str | None, body: str, prev_hash: str
) -> bytes:
    """The bytes entries written before the header form were hashed over (one canonical JSON
    object). Starts with '{' where the current form starts with '[', so the two never collide;
    verification accepts either, so logs kept from earlier releases still verify."""
    return canonical_json(
        {
            "seq": seq,
            "time": time,
            "tenant": tenant,
            "kind": kind,
            "request_id": request_id,
            "body": body,
            "prev_hash": prev_hash,
        }
    ).encode("utf-8")


def body_digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def digest_entry(
    seq: int, time: str, tenant: str | None, kind: str, request_id: str | None, body_sha256: str, prev_hash: str
) -> bytes:
    """The bytes an entry's hash covers since signed purges: its header with the body's sha256, so
    the hash of an entry whose body was purged can still be recomputed. One JSON array with no raw
    line feed (``canonical_entry`` always has one) that starts with '[' (``legacy_entry``: '{'), so
    the three forms never collide."""
    return json.dumps(
        [seq, time, tenant, kind, request_id, prev_hash, body_sha256], separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


@dataclass
class Entry:
    seq: int
    time: str
    tenant: str | None
    kind: str
    request_id: str | None
    body: str | None
    prev_hash: str
    entry_hash: str
    purged: bool = False
    body_sha256: str | None = None  # kept at append time; NULL in entries of the earlier forms

    @property
    def data(self) -> dict | None:
        return None if self.body is None else json.loads(self.body)

    @property
    def empty(self) -> bool:
        """No content: legitimate only for an entry emptied by a signed purge."""
        return not self.body

    def computed_hash(self) -> str | None:
        """The leaf hash in the current form (header + body digest); for an entry without content,
        from the digest kept at append time (None when there is none)."""
        digest = self.body_sha256 if self.empty else body_digest(self.body)
        if digest is None:
            return None
        return leaf_hash(
            digest_entry(self.seq, self.time, self.tenant, self.kind, self.request_id, digest, self.prev_hash)
        ).hex()

    def hash_matches(self) -> bool:
        """Its content hashes to its recorded hash: in the current form, or (entries with content
        only) in one of the two earlier forms, so logs kept from earlier releases still verify."""
        if self.empty:
            return self.body_sha256 is not None and self.computed_hash() == self.entry_hash
        if self.body_sha256 is not None and self.body_sha256 != body_digest(self.body):
            return False
        if self.computed_hash() == self.entry_hash:
            return True
        return self.legacy_form_matches()

    def legacy_form_matches(self) -> bool:
        fields = (self.seq, self.time, self.tenant, self.kind, self.request_id, self.body or "", self.prev_hash)
        return (
            leaf_hash(canonical_entry(*fields)).hex() == self.entry_hash
            or leaf_hash(legacy_entry(*fields)).hex() == self.entry_hash
        )

    def header(self) -> list:
        """What a signed purge binds of an earlier-form entry it empties (no body digest was kept)."""
        return [self.seq, self.time, self.tenant, self.kind, self.request_id, self.prev_hash, self.entry_hash]

    def to_dict(self) -> dict:
        # Not dataclasses.asdict: it deep-copies, which shows up on the gateway's hot path.
        return {
            "seq": self.seq,
            "time": self.time,
            "tenant": self.tenant,
            "kind": self.kind,
            "request_id": self.request_id,
            "body": self.body,
            "prev_hash": self.prev_hash,
            "entry_hash": self.entry_hash,
            "purged": self.purged,
            "body_sha256": self.body_sha256,
        }


@dataclass
class Checkpoint:
    id: int
    tree_size: int
    root_hash: str
    time: str
    key_id: str
    public_key: str
    envelope: dict

    def to_dict(self) -> dict:
        return asdict(self)

    def record(self) -> dict:
        """The line a witness keeps and ``verify --trusted`` reads."""
        return {"type": "checkpoint"} | self.to_dict()

    @property
    def payload(self) -> bytes:
        """The signed bytes (unverified here: see ``open_signed``)."""
        return _payload(self.envelope)

    @property
    def digest(self) -> str:
        """What the next checkpoint signs as its predecessor: sha256 of the signed payload."""
        return hashlib.sha256(self.payload).hexdigest()


def _payload(envelope) -> bytes:
    try:
        return base64.b64decode(envelope["payload"], validate=True)
    except (KeyError, TypeError, ValueError):
        return b""


def open_signed(envelope, keys: list[ec.EllipticCurvePublicKey], payload_type: str, *, what: str) -> dict:
    """The signed JSON body of a DSSE envelope of ``payload_type``, if a signature verifies with one
    of ``keys``; else VerificationError."""
    if not isinstance(envelope, dict) or envelope.get("payloadType") != payload_type:
        raise VerificationError(f"{what} is not a {payload_type} envelope")
    sigs = envelope.get("signatures")
    ids = {s.get("keyid") for s in sigs if isinstance(s, dict)} if isinstance(sigs, list) else set()
    key = next((k for k in keys if key_id(k) in ids), None)
    if key is None:
        raise VerificationError(
            f"{what} is signed by key {', '.join(sorted(map(str, ids))) or '(none)'}, not a trusted key"
        )
    body = read_envelope_json(verify_envelope(envelope, key, what=what), what=what)
    if not isinstance(body, dict):
        raise VerificationError(f"{what}: the signed payload is not a JSON object")
    return body


@dataclass
class _Purge:
    """An ``admin.purge`` entry as verification sees it."""

    seq: int
    before: str
    signed: bool  # False: a record from before signed purges, which authorises nothing new
    legacy: dict | None = None  # signed: {"count", "sha256"} of the earlier-form entries it emptied
    recorded: int = 0  # unsigned: how many entries it recorded emptying (its "purged", bound by its hash)
    problem: str | None = None
    headers: list = field(default_factory=list)  # earlier-form entries attributed to it by the walk


@dataclass
class VerifyReport:
    entries: int = 0
    purged: int = 0
    checkpoints: int = 0
    trusted: int = 0  # checkpoints from a trusted file (a witness, an auditor) found in the log
    unanchored: int = 0  # entries after the last checkpoint: protected by the chain only
    first_bad: int | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}


_COLUMNS = ("seq", "time", "tenant", "kind", "request_id", "body", "prev_hash", "entry_hash", "purged", "body_sha256")
_INSERT = f"INSERT INTO audit_entries ({', '.join(_COLUMNS)}) VALUES ({{ph}})"


def _row(e: Entry) -> tuple:
    return (e.seq, e.time, e.tenant, e.kind, e.request_id, e.body, e.prev_hash, e.entry_hash, e.purged, e.body_sha256)


def _checkpoint(row) -> Checkpoint:
    try:
        envelope = json.loads(row.envelope)
    except ValueError:
        envelope = {}  # an unreadable envelope fails verification like a bad signature
    return Checkpoint(**(dict(row._mapping) | {"envelope": envelope}))


def _hex(value) -> bytes:
    try:
        return bytes.fromhex(value)
    except (TypeError, ValueError):
        return b""


def _signed_body(cp: Checkpoint) -> dict:
    """The checkpoint's signed body, read without checking the signature."""
    try:
        body = json.loads(cp.payload)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
