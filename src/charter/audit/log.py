"""The tamper-evident audit log: hash-chained entries, signed Merkle checkpoints, proofs.

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
import bisect
import hashlib
import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, or_, select, text
from sqlalchemy.engine import Engine

from charter.audit import db
from charter.audit.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from charter.core import digests
from charter.core.clock import utc_now
from charter.core.io import write_jsonl_atomic
from charter.core.errors import InputError, VerificationError
from charter.provenance.dsse import read_envelope_json, sign_envelope, verify_envelope
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


def canonical_entry(seq: int, time: str, tenant: str | None, kind: str, request_id: str | None,
                    body: str, prev_hash: str) -> bytes:
    """The bytes an entry's hash covers: a JSON array of its fields, a line feed, then its
    canonical JSON body (not re-escaped inside the header, which halves the hashing work)."""
    head = json.dumps([seq, time, tenant, kind, request_id, prev_hash], separators=(",", ":"), ensure_ascii=False)
    return (head + "\n" + body).encode("utf-8")


def legacy_entry(seq: int, time: str, tenant: str | None, kind: str, request_id: str | None,
                 body: str, prev_hash: str) -> bytes:
    """The bytes entries written before the header form were hashed over (one canonical JSON
    object). Starts with '{' where the current form starts with '[', so the two never collide;
    verification accepts either, so logs kept from earlier releases still verify."""
    return canonical_json({"seq": seq, "time": time, "tenant": tenant, "kind": kind, "request_id": request_id,
                           "body": body, "prev_hash": prev_hash}).encode("utf-8")


def body_digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def digest_entry(seq: int, time: str, tenant: str | None, kind: str, request_id: str | None,
                 body_sha256: str, prev_hash: str) -> bytes:
    """The bytes an entry's hash covers since signed purges: its header with the body's sha256, so
    the hash of an entry whose body was purged can still be recomputed. One JSON array with no raw
    line feed (``canonical_entry`` always has one) that starts with '[' (``legacy_entry``: '{'), so
    the three forms never collide."""
    return json.dumps([seq, time, tenant, kind, request_id, prev_hash, body_sha256],
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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
        return leaf_hash(digest_entry(self.seq, self.time, self.tenant, self.kind, self.request_id, digest,
                                      self.prev_hash)).hex()

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
        return (leaf_hash(canonical_entry(*fields)).hex() == self.entry_hash
                or leaf_hash(legacy_entry(*fields)).hex() == self.entry_hash)

    def header(self) -> list:
        """What a signed purge binds of an earlier-form entry it empties (no body digest was kept)."""
        return [self.seq, self.time, self.tenant, self.kind, self.request_id, self.prev_hash, self.entry_hash]

    def to_dict(self) -> dict:
        # Not dataclasses.asdict: it deep-copies, which shows up on the gateway's hot path.
        return {"seq": self.seq, "time": self.time, "tenant": self.tenant, "kind": self.kind,
                "request_id": self.request_id, "body": self.body, "prev_hash": self.prev_hash,
                "entry_hash": self.entry_hash, "purged": self.purged, "body_sha256": self.body_sha256}


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
        raise VerificationError(f"{what} is signed by key {', '.join(sorted(map(str, ids))) or '(none)'}, not a trusted key")
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


class AuditLog:
    def __init__(self, engine: Engine, clock: Callable[[], str] = utc_now, witness=None,
                 earlier_keys: list[ec.EllipticCurvePublicKey] | None = None):
        self.engine = engine
        self.clock = clock
        self.witness = witness  # charter.audit.witness.Witness: gets every checkpoint this process signs
        # Public keys (earlier runtime keys, after a rotation) whose checkpoints ``checkpoint`` may
        # build on besides its own signing key's: the last checkpoint is always verified first.
        self.earlier_keys: list[ec.EllipticCurvePublicKey] = list(earlier_keys or [])
        # Leaf hashes already read (entries are append-only and a purge keeps hashes), so periodic
        # checkpoints and proofs read only what was appended since. `verify` never uses it.
        self._leaves: list[bytes] = []
        self._verified: tuple[int, str] | None = None  # (id, root) of the last checkpoint row checked or signed here
        self._leaves_lock = threading.Lock()

    # -- writing ---------------------------------------------------------------------------------
    def append(self, kind: str, body: dict, *, tenant: str | None = None, request_id: str | None = None) -> Entry:
        return self.append_many([(kind, body, tenant, request_id)])[0]

    def append_many(self, items: list[tuple[str, dict, str | None, str | None]]) -> list[Entry]:
        """Append entries in one durable transaction; returns them with their sequence numbers.

        The gateway's hot path: it runs on the driver's connection (from SQLAlchemy's pool) with
        plain parametrised SQL, which costs a few tens of microseconds where the Core statement
        layer costs most of a millisecond."""
        if any(it[0] == PURGE_KIND for it in items):
            raise InputError("purge entries are written by AuditLog.purge (signed)", source="audit")
        out = []
        with db.driver_transaction(self.engine, exclusive=True) as (cur, ph):
            seq, prev = self._head(cur, ph)
            rows = []
            for kind, body, tenant, request_id in items:
                e = self._entry(seq, kind, canonical_json(body), tenant, request_id, prev)
                out.append(e)
                rows.append(_row(e))
                seq, prev = seq + 1, e.entry_hash
            cur.executemany(_INSERT.format(ph=", ".join([ph] * len(_COLUMNS))), rows)
        return out

    def _head(self, cur, ph) -> tuple[int, str]:
        """The next sequence number and the previous hash, with the appenders' lock held."""
        if not db.is_sqlite(self.engine):
            cur.execute(f"SELECT pg_advisory_xact_lock({ph})", (_PG_LOCK,))  # the appenders' queue
        cur.execute("SELECT seq, entry_hash FROM audit_entries ORDER BY seq DESC LIMIT 1")
        row = cur.fetchone()
        return (row[0] + 1, row[1]) if row else (0, GENESIS)

    def _entry(self, seq: int, kind: str, body: str, tenant: str | None, request_id: str | None, prev: str) -> Entry:
        t, d = self.clock(), body_digest(body)  # the body is hashed once, into its digest
        h = leaf_hash(digest_entry(seq, t, tenant, kind, request_id, d, prev)).hex()
        return Entry(seq, t, tenant, kind, request_id, body, prev, h, False, d)

    # -- reading ---------------------------------------------------------------------------------
    def size(self) -> int:
        with self.engine.connect() as conn:
            n = conn.execute(select(func.max(db.entries.c.seq))).scalar()
        return 0 if n is None else n + 1

    def entries(self, *, tenant: str | None = None, since: str | None = None, until: str | None = None,
                request_id: str | None = None, kinds: list[str] | None = None, after_seq: int | None = None,
                limit: int | None = None, newest_first: bool = False, batch: int = 5000,
                session: str | None = None) -> Iterator[Entry]:
        q = select(db.entries)
        if session is not None:  # bodies are canonical JSON, so this is the exact field
            q = q.where(db.entries.c.body.contains(canonical_json({"session": session})[1:-1], autoescape=True))
        if tenant is not None:
            q = q.where(db.entries.c.tenant == tenant)
        if since:
            q = q.where(db.entries.c.time >= since)
        if until:
            q = q.where(db.entries.c.time < until)
        if request_id:
            q = q.where(db.entries.c.request_id == request_id)
        if kinds:
            q = q.where(db.entries.c.kind.in_(kinds))
        if after_seq is not None:
            q = q.where(db.entries.c.seq > after_seq)
        q = q.order_by(db.entries.c.seq.desc() if newest_first else db.entries.c.seq)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(q)
            for r in result:
                yield Entry(**r._mapping)

    def count_by_kind(self, kinds: list[str], *, since: str | None = None) -> dict[str, int]:
        q = select(db.entries.c.kind, func.count()).where(db.entries.c.kind.in_(kinds)).group_by(db.entries.c.kind)
        if since:
            q = q.where(db.entries.c.time >= since)
        with self.engine.connect() as conn:
            found = dict(conn.execute(q).all())
        return {k: int(found.get(k, 0)) for k in kinds}

    def leaf_hashes(self, size: int | None = None, *, conn=None) -> list[bytes]:
        """Leaf hashes of the first ``size`` entries (all by default); ``conn``: read on that
        connection (inside its transaction) instead of a new one."""
        with self._leaves_lock:
            have = len(self._leaves)
            q = select(db.entries.c.seq, db.entries.c.entry_hash).where(db.entries.c.seq >= have).order_by(db.entries.c.seq)
            if conn is not None:
                new = conn.execute(q).all()
            else:
                with self.engine.connect() as c:
                    new = c.execution_options(yield_per=20000).execute(q).all()
            if any(seq != have + i for i, (seq, _) in enumerate(new)):
                raise VerificationError(f"the audit log has a gap after entry {have - 1}: run `charter audit verify`")
            self._leaves.extend(bytes.fromhex(h) for _, h in new)
            return self._leaves[:size] if size is not None else list(self._leaves)

    # -- checkpoints -------------------------------------------------------------------------------
    def checkpoint(self, private_key: ec.EllipticCurvePrivateKey, *, witness=None,
                   trusted_keys: list[ec.EllipticCurvePublicKey] | None = None,
                   covering: int | None = None) -> Checkpoint | None:
        """Sign the current tree head (skipped when nothing was appended since the last one),
        chained to the last checkpoint: its index, the last one's digest, and a consistency proof
        from the last signed root. The last checkpoint row is checked first, whatever its columns
        say: its signature (by this key, ``self.earlier_keys`` or ``trusted_keys``: earlier runtime
        keys after a rotation), its row against what was signed, its size against the log's, and
        that the log still extends its signed root. Refuses (VerificationError) otherwise, so a
        rewritten log is never re-signed and a forged row never stops or steers checkpointing.
        A new checkpoint goes to the witness (``witness`` or the log's own); with none new, the
        witness retries what it owes. ``covering``: the entry a caller needs in the tree (a proof);
        a checked last checkpoint that already holds it is returned without signing a new one."""
        witness = witness or self.witness
        leaves = self.leaf_hashes()
        with self.engine.connect() as conn:
            last = self._last_row(conn)
        if not leaves:
            if last is not None:
                raise VerificationError(f"the audit log is empty but checkpoint {last.id} signed {last.tree_size} entries: "
                                        "refusing to sign or prove; run `charter audit verify`")
            return None
        if (last is not None and self._verified == (last.id, last.root_hash)
                and (last.tree_size == len(leaves) or (covering is not None and covering < last.tree_size <= len(leaves)))):
            if witness is not None:
                witness.flush()
            return last  # nothing new (or nothing the caller needs) since this process checked or signed it
        keys = [private_key.public_key(), *self.earlier_keys, *(trusted_keys or [])]
        tree = MerkleTree(leaves)  # built before the write lock: appends are not held up by it
        created = None
        # The lock makes the chain linear when several processes checkpoint at once (SQLite: the
        # write lock taken by BEGIN IMMEDIATE; PostgreSQL: an advisory lock that appends don't take).
        with self.engine.begin() as conn:
            if not db.is_sqlite(self.engine):
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_CHECKPOINT_LOCK})
            last = self._last_row(conn)
            if last is not None and last.tree_size > tree.size:
                # Another process appended and checkpointed since the leaves were read (rare).
                tree = MerkleTree(self.leaf_hashes(conn=conn))
            signed = self._check_last(last, tree, keys) if last is not None else None
            if last is None or last.tree_size < tree.size:
                chained = signed is not None and isinstance(signed.get("index"), int)
                count = 0 if chained else conn.execute(select(func.count()).select_from(db.checkpoints)).scalar()
                body = self._chained_body(tree, last, signed, count)
                envelope = sign_envelope(canonical_json(body).encode(), CHECKPOINT_TYPE, private_key)
                pub = private_key.public_key()
                pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
                row = {"tree_size": body["tree_size"], "root_hash": body["root_hash"], "time": body["time"],
                       "key_id": key_id(pub), "public_key": pem, "envelope": json.dumps(envelope)}
                cid = conn.execute(db.checkpoints.insert().values(**row)).inserted_primary_key[0]
                created = Checkpoint(cid, **(row | {"envelope": envelope}))
        newest = created or last
        self._verified = (newest.id, newest.root_hash)
        if witness is not None:
            witness.publish(created) if created is not None else witness.flush()
        return newest

    @staticmethod
    def _last_row(conn) -> Checkpoint | None:
        row = conn.execute(select(db.checkpoints).order_by(db.checkpoints.c.tree_size.desc(),
                                                           db.checkpoints.c.id.desc()).limit(1)).first()
        return _checkpoint(row) if row else None

    @staticmethod
    def _check_last(last: Checkpoint, tree: MerkleTree, keys: list[ec.EllipticCurvePublicKey]) -> dict:
        """The last checkpoint's signed body, if it is one a new checkpoint may build on (or be
        returned as the latest): signed by one of ``keys`` (whatever its key_id column says), its
        row what was signed, no larger than the log, and the log's entries still having its root.
        Else VerificationError (the gateway answers 409 and logs the periodic failure)."""
        n = tree.size
        try:
            signed = open_signed(last.envelope, keys, CHECKPOINT_TYPE, what=f"checkpoint {last.id}")
        except VerificationError as exc:
            sigs = last.envelope.get("signatures") if isinstance(last.envelope, dict) else None
            other = sorted({str(g.get("keyid")) for g in sigs if isinstance(g, dict)} if isinstance(sigs, list) else [])
            how = (f"if {', '.join(other)} is an earlier runtime key of this gateway, verify the log with it "
                   "(`charter audit verify --public-key OLD.pub.pem`) and give it to the checkpointer as an earlier key "
                   "(AuditLog(earlier_keys=...) or checkpoint(trusted_keys=...)); otherwise the row was forged: "
                   "run `charter audit verify`" if other else "the row was forged: run `charter audit verify`")
            raise VerificationError(f"the last checkpoint ({last.id}, {last.tree_size} entries) does not verify with this "
                                    f"gateway's key {key_id(keys[0])} ({exc}); refusing to sign or prove: {how}") from None
        if signed.get("tree_size") != last.tree_size or signed.get("root_hash") != last.root_hash:
            raise VerificationError(f"checkpoint {last.id}'s row differs from what was signed: refusing to sign; "
                                    "run `charter audit verify`")
        if not isinstance(last.tree_size, int) or last.tree_size > n:
            raise VerificationError(f"the last checkpoint ({last.id}) signed {last.tree_size} entries but the log holds {n}: "
                                    "entries were deleted; refusing to sign; run `charter audit verify`")
        if last.tree_size == n and tree.root().hex() != last.root_hash:
            raise VerificationError(f"the audit log no longer matches checkpoint {last.id} ({last.tree_size} entries): "
                                    "refusing to sign or prove; run `charter audit verify`")
        return signed

    def _chained_body(self, tree: MerkleTree, last: Checkpoint | None, signed: dict | None, count: int) -> dict:
        """The body of the checkpoint after ``last`` (its signed body ``signed``, already verified
        by ``_check_last``)."""
        n, root = tree.size, tree.root()
        prev, proof, index = None, [], count
        if last is not None:
            old_root = _hex(signed.get("root_hash"))
            proof = tree.consistency_proof(last.tree_size, n) if last.tree_size >= 1 else []
            if last.tree_size < 1 or not verify_consistency(last.tree_size, n, old_root, root, proof):
                raise VerificationError(f"the audit log no longer extends checkpoint {last.id} ({last.tree_size} entries): "
                                        "refusing to sign it; run `charter audit verify`")
            prev = {"digest": last.digest, "tree_size": last.tree_size, "root_hash": old_root.hex()}
            if isinstance(signed.get("index"), int):
                index = signed["index"] + 1
        return {"log": LOG_ID, "tree_size": n, "root_hash": root.hex(), "time": self.clock(), "index": index,
                "prev": prev, "consistency_proof": [h.hex() for h in proof]}

    def checkpoints(self) -> list[Checkpoint]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.checkpoints).order_by(db.checkpoints.c.tree_size, db.checkpoints.c.id)).all()
        return [_checkpoint(r) for r in rows]

    def latest_checkpoint(self) -> Checkpoint | None:
        cps = self.checkpoints()
        return cps[-1] if cps else None

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> list[str]:
        tree = MerkleTree(self.leaf_hashes(tree_size))
        return [h.hex() for h in tree.inclusion_proof(seq, tree_size)]

    def consistency_proof(self, old_size: int, new_size: int) -> list[str]:
        tree = MerkleTree(self.leaf_hashes(new_size))
        return [h.hex() for h in tree.consistency_proof(old_size, new_size)]

    # -- verification ----------------------------------------------------------------------------
    def verify(self, public_keys: list[ec.EllipticCurvePublicKey] | None = None,
               progress: Callable[[int], None] | None = None, *, trusted: list[dict] | None = None) -> VerifyReport:
        """Walk the chain in order, then check every checkpoint's signature, root and link to the
        one before it, then (``trusted``: checkpoint records kept elsewhere) that the log contains
        each trusted checkpoint and its entries still have the trusted root.

        ``public_keys`` pins the signers of checkpoints and purges; without it the keys of the
        trusted records are used, else the keys recorded beside the checkpoints (which an attacker
        with write access could replace: pin in audits).
        """
        seen: list[int] = []
        rep = self._verify(public_keys, progress, trusted, seen)
        if not rep.ok and self.count_by_kind([PURGE_KIND])[PURGE_KIND] != seen[0]:
            # A purge committed while the walk ran (the purge list was read before the entries it
            # emptied): verify once more, with it.
            rep = self._verify(public_keys, progress, trusted, seen)
        return rep

    def _verify(self, public_keys, progress, trusted, seen: list[int]) -> VerifyReport:
        rep = VerifyReport()
        cps = self.checkpoints()
        keys = self._verify_keys(public_keys, trusted, cps, rep)
        pinned = public_keys is not None or bool(trusted)
        first_chained = _first_chained_size(cps, keys, pinned)
        purges = self._purges(keys)
        seen[:] = [len(purges)]
        prev, expected, leaves = GENESIS, 0, []

        def bad(seq: int, why: str) -> VerifyReport:
            rep.first_bad, rep.problem = seq, why
            return rep

        legacy_purged = 0
        for e in self.entries():
            rep.entries += 1
            if progress and rep.entries % 10000 == 0:
                progress(10000)
            if e.seq != expected:
                return bad(expected, f"entry {expected} is missing (deleted); the next entry present is {e.seq}")
            if e.empty or e.purged:
                why, legacy = _check_purged(e, purges, first_chained)
                if why:
                    return bad(e.seq, why)
                rep.purged += 1
                legacy_purged += legacy
            elif not e.hash_matches():
                return bad(e.seq, f"entry {e.seq} was modified: its content does not hash to its recorded hash")
            if e.kind == PURGE_KIND and (why := _purge_record_problem(e, purges, first_chained)):
                return bad(e.seq, why)
            if e.prev_hash != prev:
                return bad(e.seq, f"entry {e.seq} does not follow entry {e.seq - 1} (an entry was inserted, deleted or reordered here)")
            prev, expected = e.entry_hash, expected + 1
            leaves.append(bytes.fromhex(e.entry_hash))
        for p in purges.values():
            if p.problem is None and (why := _legacy_mismatch(p) if p.signed else _unsigned_excess(p)):
                return bad(p.headers[0][0] if p.headers else p.seq, why)
        if legacy_purged:
            rep.notes.append(f"{legacy_purged} entries were purged before purges were signed: their headers are not bound "
                             "to a content hash")
        tree = MerkleTree(leaves)
        why_at = self._verify_checkpoints(cps, keys, pinned, tree, rep)
        if why_at:
            return bad(why_at[0], why_at[1])
        if trusted:
            why_at = _verify_trusted(trusted, keys, cps, tree)
            if why_at:
                return bad(why_at[0], why_at[1])
            rep.trusted = len(trusted)
        return rep

    @staticmethod
    def _verify_keys(public_keys, trusted, cps: list[Checkpoint], rep: VerifyReport) -> list[ec.EllipticCurvePublicKey]:
        if public_keys is not None:
            return list(public_keys)
        pems = [r.get("public_key") for r in trusted] if trusted else [c.public_key for c in cps]
        keys, seen = [], set()
        for pem in dict.fromkeys(pems):  # distinct, in order: one key signs thousands of checkpoints
            try:
                k = serialization.load_pem_public_key(str(pem).encode())
            except (ValueError, TypeError):
                continue
            if isinstance(k, ec.EllipticCurvePublicKey) and key_id(k) not in seen:
                seen.add(key_id(k))
                keys.append(k)
        if trusted:
            rep.notes.append("signing keys taken from the trusted file; pin them with --public-key")
        elif cps:
            rep.notes.append("checkpoint keys taken from the database; pin them with --public-key")
        return keys

    def _purges(self, keys) -> "_Purges":
        """Every purge entry, with the cutoff its signature authorises (or why it authorises nothing)."""
        return _Purges([_purge_of(e, keys) for e in self.entries(kinds=[PURGE_KIND])])

    @staticmethod
    def _verify_checkpoints(cps: list[Checkpoint], keys, pinned: bool, tree: MerkleTree,
                            rep: VerifyReport) -> tuple[int, str] | None:
        """Each checkpoint's signature, its row, its root over the entries, and its link to the one
        before it: index, the predecessor's digest, and the signed consistency proof checked
        against the predecessor's signed root (not against a proof rebuilt from these entries)."""
        n = tree.size
        last_good: Checkpoint | None = None
        last_body: dict | None = None
        unchained = 0
        for i, cp in enumerate(cps):
            where = max(min(cp.tree_size, n) - 1, 0)
            lo = last_good.tree_size if last_good else 0
            own = keys if pinned else _row_key(cp)
            try:
                body = open_signed(cp.envelope, own, CHECKPOINT_TYPE, what=f"checkpoint {cp.id}")
            except VerificationError as exc:
                return where, str(exc)
            if body.get("tree_size") != cp.tree_size or body.get("root_hash") != cp.root_hash:
                return where, f"checkpoint {cp.id}'s row differs from what was signed"
            if cp.tree_size > n:
                return n, f"the log holds {n} entries but checkpoint {cp.id} signed {cp.tree_size}: entries from {n} on were deleted"
            if tree.root(cp.tree_size).hex() != cp.root_hash:
                return lo, (f"entries {lo}..{cp.tree_size - 1} do not match signed checkpoint {cp.id} "
                            f"(the log was rewritten within that range)")
            if "index" in body:
                why = _link_problem(cp, body, i, last_good)
                if why:
                    return lo, why
            elif last_body is not None and "index" in last_body:
                return lo, f"checkpoint {cp.id} is unchained but follows a chained checkpoint (it was inserted)"
            else:
                unchained += 1
            rep.checkpoints += 1
            last_good, last_body = cp, body
        if unchained:
            rep.notes.append(f"{unchained} checkpoints from before chained checkpoints are not chained")
        rep.unanchored = n - (last_good.tree_size if last_good else 0)
        return None

    # -- retention -------------------------------------------------------------------------------
    def purge(self, before: str, private_key: ec.EllipticCurvePrivateKey, *, actor: str = "retention",
              reason: str = "retention period") -> int:
        """Drop the content of entries older than ``before`` (ISO time); returns how many.

        A checkpoint is signed first; then, in one transaction, a purge entry (who, cutoff, reason,
        signed by ``private_key`` over its place in the log) is appended and the content of the
        entries before it and older than the cutoff is emptied. Their hashes stay: an entry's hash
        covers its header and its body's digest, so the log still verifies. Purge entries keep
        their content (they are what authorises the empty ones)."""
        self.checkpoint(private_key)
        with db.driver_transaction(self.engine, exclusive=True) as (cur, ph):
            seq, prev = self._head(cur, ph)
            where = f"time < {ph} AND seq < {ph} AND body IS NOT NULL AND kind <> {ph}"
            cur.execute(f"SELECT COUNT(*) FROM audit_entries WHERE {where} AND body_sha256 IS NOT NULL", (before, seq, PURGE_KIND))
            n = cur.fetchone()[0]
            legacy = self._legacy_headers(cur, where, (before, seq, PURGE_KIND))
            if not n and not legacy:
                return 0  # nothing to empty: no entry (hourly retention would otherwise add one each hour)
            signed = {"log": LOG_ID, "seq": seq, "prev_hash": prev, "before": before, "actor": actor, "reason": reason,
                      "purged": n + len(legacy),
                      "legacy": {"count": len(legacy), "sha256": _headers_digest(legacy)}}
            envelope = sign_envelope(canonical_json(signed).encode(), PURGE_TYPE, private_key)
            body = {k: signed[k] for k in ("before", "actor", "reason", "purged", "legacy")} | {"authorisation": envelope}
            e = self._entry(seq, PURGE_KIND, canonical_json(body), None, None, prev)
            cur.execute(_INSERT.format(ph=", ".join([ph] * len(_COLUMNS))), _row(e))
            cur.execute(f"UPDATE audit_entries SET body = NULL, purged = {ph} WHERE {where}", (True, before, seq, PURGE_KIND))
        return n + len(legacy)

    def _legacy_headers(self, cur, where: str, params: tuple) -> list[list]:
        """Headers of the earlier-form entries a purge is about to empty (no body digest was kept
        for them, so the purge signs their headers); refuses to bless content already tampered with."""
        cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM audit_entries WHERE {where} AND body_sha256 IS NULL ORDER BY seq", params)
        out = []
        for r in cur.fetchall():
            e = Entry(*r)
            if not e.legacy_form_matches():
                raise VerificationError(f"entry {e.seq} was modified: refusing to purge it; run `charter audit verify`")
            out.append(e.header())
        return out

    # -- export ----------------------------------------------------------------------------------
    def export(self, out: str | Path, private_key: ec.EllipticCurvePrivateKey, *, tenant: str | None = None,
               since: str | None = None, until: str | None = None) -> dict:
        """JSONL for a regulator: a signed checkpoint, then each selected entry with its inclusion
        proof against it, then the signed purge entries that emptied any of them, each with the
        headers of the earlier-form entries it emptied (what its signed ``legacy`` digest covers).
        ``verify_export`` checks the file with the public key alone. Created 0600: it holds
        tenants' content."""
        cp = self.checkpoint(private_key)
        if cp is None:
            raise InputError("the audit log is empty", source="audit")
        tree = MerkleTree(self.leaf_hashes(cp.tree_size))
        purges = [(p, _json_object(p.body)) for p in self.entries(kinds=[PURGE_KIND]) if p.seq < cp.tree_size]
        seqs = [p.seq for p, _ in purges]

        def emptied_by(e: Entry, signed_only: bool) -> Entry | None:
            """The first purge after ``e`` whose cutoff covers it (the one that emptied it)."""
            for p, d in purges[bisect.bisect_right(seqs, e.seq):]:
                if isinstance(d.get("before"), str) and e.time < d["before"] and (not signed_only or "authorisation" in d):
                    return p
            return None

        needed: dict[int, Entry] = {}
        counted = [0]

        def lines():
            yield cp.record()
            for e in self.entries(tenant=tenant, since=since, until=until):
                if e.seq >= cp.tree_size:
                    break
                if e.empty:  # the first purge after it whose cutoff covers it emptied it
                    p = emptied_by(e, e.body_sha256 is not None)
                    if p is not None and "authorisation" in _json_object(p.body):
                        needed[p.seq] = p
                proof = [h.hex() for h in tree.inclusion_proof(e.seq, cp.tree_size)]
                yield {"type": "entry"} | e.to_dict() | {"inclusion_proof": proof}
                counted[0] += 1
            legacy = self._legacy_emptied(cp.tree_size, emptied_by, needed)
            for p in needed.values():
                proof = [h.hex() for h in tree.inclusion_proof(p.seq, cp.tree_size)]
                yield {"type": "purge"} | p.to_dict() | {"inclusion_proof": proof, "legacy_headers": legacy.get(p.seq, [])}

        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(out, lines(), private=True)
        n = counted[0]
        return {"path": str(out), "entries": n, "tree_size": cp.tree_size, "root_hash": cp.root_hash}

    def _legacy_emptied(self, size: int, emptied_by, purges: dict[int, Entry]) -> dict[int, list[list]]:
        """Headers of the earlier-form entries (no kept body digest) without content, by the purge
        that emptied them, for those of ``purges`` that signed emptying any (read only then)."""
        if not any(isinstance(_json_object(p.body).get("legacy"), dict) and _json_object(p.body)["legacy"].get("count")
                   for p in purges.values()):
            return {}
        c = db.entries.c
        q = (select(db.entries).where(c.seq < size, c.body_sha256.is_(None), or_(c.body.is_(None), c.body == ""))
             .order_by(c.seq))
        out: dict[int, list[list]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                e = Entry(**r._mapping)
                p = emptied_by(e, False)
                if p is not None and p.seq in purges:
                    out.setdefault(p.seq, []).append(e.header())
        return out


class GroupCommitWriter:
    """Appends from many concurrent requests committed together: one writer thread drains the
    queue and appends everything waiting in one transaction (group commit), so under load the
    cost of a durable commit is shared; a lone request waits for its own commit only."""

    def __init__(self, log: AuditLog, max_batch: int = 256):
        import queue
        import threading

        self.log, self.max_batch = log, max_batch
        self._queue: "queue.Queue" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, items: list[tuple[str, dict, str | None, str | None]]):
        """A concurrent.futures.Future resolving to the appended entries."""
        from concurrent.futures import Future

        fut: Future = Future()
        self._queue.put((items, fut))
        return fut

    def append_many(self, items):
        return self.submit(items).result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        import queue

        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            try:
                entries = self.log.append_many([it for items, _ in jobs for it in items])
            except BaseException as exc:  # noqa: BLE001 - every waiter gets the failure
                for _, fut in jobs:
                    fut.set_exception(exc)
            else:
                k = 0
                for items, fut in jobs:
                    fut.set_result(entries[k:k + len(items)])
                    k += len(items)
            if stop:
                return


def verify_export(path: str | Path, public_key: ec.EllipticCurvePublicKey) -> dict:
    """Check an export with the public key alone: the signed checkpoint, each entry's hash and
    inclusion proof, and for an entry without content, the signed purge (in the file) that
    authorises it: one covering its time, and for an entry of the earlier forms (no kept body
    digest), one whose signed list of emptied earlier-form headers (in the file, checked against
    its signed digest) holds the entry's header."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such export file", source=str(p))
    lines = p.read_text().splitlines()
    try:
        head = json.loads(lines[0])
        envelope = head["envelope"]
    except (IndexError, ValueError, KeyError, TypeError):
        raise InputError("not an audit export (no checkpoint line)", source=f"{p}:1") from None
    body = open_signed(envelope, [public_key], CHECKPOINT_TYPE, what="checkpoint")
    size, root = body["tree_size"], bytes.fromhex(body["root_hash"])
    records = []
    for i, line in enumerate(lines[1:], start=2):
        try:
            rec = json.loads(line)
            e = Entry(**{k: rec.get(k) for k in Entry.__dataclass_fields__})
            if not isinstance(e.body, (str, type(None))):
                raise TypeError("body")
        except (ValueError, TypeError, AttributeError):
            raise InputError("not an audit export line", source=f"{p}:{i}") from None
        if e.purged and not e.empty:
            raise VerificationError(f"{p}:{i}: entry {e.seq} is flagged purged but still has content (the flag was set by hand)")
        if not e.empty and not e.hash_matches():
            raise VerificationError(f"{p}:{i}: entry {e.seq} was modified: its content does not hash to its recorded hash")
        if not isinstance(e.seq, int) or not verify_inclusion(e.seq, size, _hex(e.entry_hash),
                                                              [_hex(h) for h in rec.get("inclusion_proof") or []], root):
            raise VerificationError(f"{p}:{i}: entry {e.seq} is not in the signed log of {size} entries")
        records.append((i, rec.get("type"), e, rec))
    purges = _Purges([_purge_of(e, [public_key]) for _, t, e, _ in records if t == "purge"])
    listed: dict[int, set[str]] = {}  # per signed purge: the earlier-form headers it signed emptying
    for i, t, e, rec in records:
        if t != "purge":
            continue
        pg = purges[e.seq]
        if why := pg.problem or (None if pg.signed else f"purge entry {e.seq} is not signed"):
            raise VerificationError(f"{p}:{i}: {why}")
        headers = rec.get("legacy_headers") or []
        pg.headers = headers if isinstance(headers, list) and all(isinstance(h, list) for h in headers) else [None]
        if why := _legacy_mismatch(pg):
            raise VerificationError(f"{p}:{i}: {why}")
        listed[e.seq] = {canonical_json(h) for h in pg.headers}
    for i, t, e, _ in records:
        if not (e.empty or e.purged):
            continue
        if e.empty and e.body_sha256 is None:
            # Earlier form (no kept digest): its header must be one a signed purge signed emptying.
            h = canonical_json(e.header())
            if not any(q.signed and h in listed.get(q.seq, ()) for q in purges.covering(e)):
                raise VerificationError(
                    f"{p}:{i}: entry {e.seq} has no content and no kept body digest, and no signed purge in the file "
                    "signed emptying it with this header (its content was deleted and its header rewritten, or it was "
                    "purged before purges were signed: its header cannot be checked offline)")
            continue
        why, _ = _check_purged(e, purges, None)
        if why:
            raise VerificationError(f"{p}:{i}: {why}")
    n = sum(t == "entry" for _, t, _, _ in records)
    return {"entries": n, "tree_size": size, "root_hash": body["root_hash"], "checkpoint_time": body["time"]}


# -- verification helpers ----------------------------------------------------------------------------
def _json_object(body: str | None) -> dict:
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _row_key(cp: Checkpoint) -> list[ec.EllipticCurvePublicKey]:
    try:
        k = serialization.load_pem_public_key(cp.public_key.encode())
    except (ValueError, TypeError, AttributeError):
        return []
    return [k] if isinstance(k, ec.EllipticCurvePublicKey) else []


def _first_chained_size(cps: list[Checkpoint], keys, pinned: bool) -> int | None:
    """Tree size of the first properly signed chained checkpoint: entries at or past it were
    written by a release that signs purges, so an unsigned purge there is a forgery."""
    for cp in cps:
        try:
            body = open_signed(cp.envelope, keys if pinned else _row_key(cp), CHECKPOINT_TYPE, what="checkpoint")
        except VerificationError:
            continue
        if "index" in body and isinstance(body.get("tree_size"), int):
            return body["tree_size"]
    return None


def _headers_digest(headers: list[list]) -> str:
    return hashlib.sha256(canonical_json(headers).encode()).hexdigest()


def _purge_of(e: Entry, keys) -> _Purge:
    """What a purge entry authorises: the cutoff its signature covers, or why it authorises nothing."""
    data = _json_object(e.body)
    before = data.get("before") if isinstance(data.get("before"), str) else ""
    if "authorisation" not in data:
        if e.empty:
            # Without its content its cutoff and count are unknown, so the entries it emptied could
            # not be told from entries emptied since (the release before signed purges did empty
            # its own earlier purge entries once they were older than the cutoff).
            return _Purge(e.seq, "", False, problem=f"purge entry {e.seq} has no content: the entries it emptied "
                                                    "cannot be accounted for")
        # Written before purges were signed (hashed in an earlier form), or forged.
        legacy = e.body_sha256 is None and not e.empty and e.legacy_form_matches()
        recorded = data.get("purged") if type(data.get("purged")) is int else 0
        return _Purge(e.seq, before, False, recorded=recorded,
                      problem=None if legacy else f"purge entry {e.seq} is not signed (forged)")
    try:
        signed = open_signed(data["authorisation"], keys, PURGE_TYPE, what=f"purge entry {e.seq}")
    except VerificationError as exc:
        return _Purge(e.seq, before, False, problem=f"{exc} (a forged purge)")
    if signed.get("seq") != e.seq or signed.get("prev_hash") != e.prev_hash:
        return _Purge(e.seq, before, False, problem=f"purge entry {e.seq} carries a signature made for another place in the log")
    if not isinstance(signed.get("before"), str) or any(signed.get(k) != data.get(k) for k in ("before", "actor", "reason", "purged", "legacy")):
        return _Purge(e.seq, before, False, problem=f"purge entry {e.seq} differs from what was signed")
    return _Purge(e.seq, signed["before"], True, legacy=signed.get("legacy"))


class _Purges(dict):
    """Purge entries by sequence number, with the valid ones in order for ``covering``."""

    def __init__(self, purges: list[_Purge]):
        super().__init__((p.seq, p) for p in purges)
        self.valid = sorted((p for p in purges if p.problem is None), key=lambda p: p.seq)
        self.seqs = [p.seq for p in self.valid]

    def covering(self, e: Entry) -> Iterator[_Purge]:
        """Valid purges after ``e`` whose cutoff is past its time, in log order (the first one is
        the purge that emptied it: an earlier one covering it would have)."""
        for p in self.valid[bisect.bisect_right(self.seqs, e.seq):]:
            if e.time < p.before:
                yield p


def _check_purged(e: Entry, purges: _Purges, first_chained: int | None) -> tuple[str | None, int]:
    """Why an entry without content (or flagged purged) is not accepted, else None; and 1 when it
    was emptied by an unsigned purge from before purges were signed."""
    if not e.empty:
        return f"entry {e.seq} is flagged purged but still has content (the flag was set by hand)", 0
    none = f"entry {e.seq} has no content and no signed purge after it covers its time (its content was deleted)"
    if e.body_sha256 is not None:
        if not e.hash_matches():
            return (f"entry {e.seq} was modified: its header and kept body digest do not hash to its recorded hash "
                    "(its content was purged)"), 0
        return (None, 0) if any(p.signed for p in purges.covering(e)) else (none, 0)
    first = next(purges.covering(e), None)  # earlier form: bound by the purge that emptied it
    if first is None:
        return none, 0
    if first.signed:
        first.headers.append(e.header())
        return None, 0
    if first_chained is not None and e.seq >= first_chained:
        return none, 0
    first.headers.append(e.header())  # counted against what that unsigned purge recorded
    return None, 1


def _purge_record_problem(e: Entry, purges: "_Purges", first_chained: int | None) -> str | None:
    p = purges.get(e.seq)
    if p is None or p.problem:
        return p.problem if p else f"purge entry {e.seq} changed during verification"
    if not p.signed and first_chained is not None and e.seq >= first_chained:
        return f"purge entry {e.seq} is not signed but was written after checkpoints were chained (forged)"
    return None


def _unsigned_excess(p: _Purge) -> str | None:
    """The release before signed purges emptied every entry older than the cutoff not yet purged,
    then appended the purge entry with that count: each entry it emptied is attributed to it (the
    first later purge covering it), so more than it recorded means entries were emptied since."""
    if len(p.headers) > p.recorded:
        return (f"{len(p.headers)} entries without content are attributed to purge entry {p.seq} (written before purges "
                f"were signed), which recorded emptying {p.recorded}: content was deleted and headers rewritten since")
    return None


def _legacy_mismatch(p: _Purge) -> str | None:
    want = p.legacy if isinstance(p.legacy, dict) else {"count": 0, "sha256": _headers_digest([])}
    if len(p.headers) != want.get("count") or _headers_digest(p.headers) != want.get("sha256"):
        return (f"the earlier-form entries emptied by purge entry {p.seq} differ from what it signed "
                "(their headers were rewritten, or more entries were emptied)")
    return None


def _link_problem(cp: Checkpoint, body: dict, i: int, last: Checkpoint | None) -> str | None:
    """Why a chained checkpoint does not link to the checkpoint before it, else None."""
    if body.get("index") != i:
        return (f"checkpoint {cp.id} was signed as checkpoint #{body.get('index')} but is #{i} in the log: "
                "checkpoints were deleted, inserted or reordered")
    prev = body.get("prev")
    if last is None:
        return None if prev is None else f"checkpoint {cp.id} links to a predecessor the log no longer holds (deleted)"
    if prev != {"digest": last.digest, "tree_size": last.tree_size, "root_hash": last.root_hash}:
        return (f"checkpoint {cp.id} does not link to checkpoint {last.id} before it "
                "(checkpoints were deleted, inserted, reordered or re-signed)")
    proof = body.get("consistency_proof")
    if not isinstance(proof, list) or not verify_consistency(last.tree_size, cp.tree_size, _hex(last.root_hash),
                                                             _hex(cp.root_hash), [_hex(h) for h in proof]):
        return f"checkpoint {cp.id}'s signed consistency proof does not lead from checkpoint {last.id}'s signed root"
    return None


def _verify_trusted(trusted: list[dict], keys, cps: list[Checkpoint], tree: MerkleTree) -> tuple[int, str] | None:
    """Each trusted checkpoint (kept outside the database) must be signed by a trusted key, its
    root must be the root of the log's first entries, and the log's checkpoints must include it
    (the same signed body)."""
    n, have = tree.size, {c.digest for c in cps}
    opened = []
    for j, rec in enumerate(trusted, 1):
        what = f"trusted checkpoint {j}"
        env = rec.get("envelope") if isinstance(rec, dict) else None
        try:
            body = open_signed(env, keys, CHECKPOINT_TYPE, what=what)
        except VerificationError as exc:
            return 0, str(exc)
        if not isinstance(body.get("tree_size"), int) or body["tree_size"] < 1:
            return 0, f"{what} has no tree size"
        opened.append((body, hashlib.sha256(_payload(env)).hexdigest(), what))
    matched = 0
    for body, digest, what in sorted(opened, key=lambda o: o[0]["tree_size"]):
        size = body["tree_size"]
        label = f"{what} (#{body.get('index', '?')}: {size} entries, signed {body.get('time')})"
        if size > n:
            return n, f"the log holds {n} entries but {label} covers {size}: entries from {n} on were deleted"
        if tree.root(size).hex() != body.get("root_hash"):
            return matched, (f"entries {matched}..{size - 1} do not match {label}: the log was rewritten "
                             "(and its checkpoints deleted or re-signed) after it")
        if digest not in have:
            return size - 1, f"{label} is not among the log's checkpoints: checkpoints were deleted or replaced"
        matched = size
    return None
