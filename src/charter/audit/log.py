"""The tamper-evident audit log: hash-chained entries, signed Merkle checkpoints, proofs.

Each entry's hash is the RFC 6962 leaf hash of its canonical bytes, which include the previous
entry's hash: editing, deleting, inserting or reordering an entry breaks the chain at that entry.
A checkpoint signs (tree size, Merkle root) with the gateway's key, so a log rewritten from some
entry on with recomputed hashes still fails against the signed root, and a regulator holding an
exported entry can check its inclusion proof against a checkpoint without the rest of the log.
Appends from several threads or processes are serialised by the database (SQLite: BEGIN
IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock), so there is one chain.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from charter.audit import db
from charter.audit.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from charter.errors import InputError, VerificationError
from charter.provenance.dsse import read_envelope_json, sign_envelope, verify_envelope
from charter.provenance.keys import key_id

GENESIS = "0" * 64
CHECKPOINT_TYPE = "application/vnd.charter.audit-checkpoint.v1+json"
_PG_LOCK = 0x43484152  # "CHAR": the advisory lock that serialises appends on PostgreSQL


def utc_now() -> str:
    """ISO-8601 UTC with microseconds: sorts lexically in time order."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


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

    @property
    def data(self) -> dict | None:
        return None if self.body is None else json.loads(self.body)

    def computed_hash(self) -> str:
        return leaf_hash(canonical_entry(self.seq, self.time, self.tenant, self.kind, self.request_id,
                                         self.body or "", self.prev_hash)).hex()

    def hash_matches(self) -> bool:
        """Its content hashes to its recorded hash, in the current or the earlier entry form."""
        if self.computed_hash() == self.entry_hash:
            return True
        fields = (self.seq, self.time, self.tenant, self.kind, self.request_id, self.body or "", self.prev_hash)
        return leaf_hash(legacy_entry(*fields)).hex() == self.entry_hash

    def to_dict(self) -> dict:
        # Not dataclasses.asdict: it deep-copies, which shows up on the gateway's hot path.
        return {"seq": self.seq, "time": self.time, "tenant": self.tenant, "kind": self.kind,
                "request_id": self.request_id, "body": self.body, "prev_hash": self.prev_hash,
                "entry_hash": self.entry_hash, "purged": self.purged}


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


@dataclass
class VerifyReport:
    entries: int = 0
    purged: int = 0
    checkpoints: int = 0
    unanchored: int = 0  # entries after the last checkpoint: protected by the chain only
    first_bad: int | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}


class AuditLog:
    def __init__(self, engine: Engine, clock: Callable[[], str] = utc_now):
        self.engine = engine
        self.clock = clock
        # Leaf hashes already read (entries are append-only and a purge keeps hashes), so periodic
        # checkpoints and proofs read only what was appended since. `verify` never uses it.
        self._leaves: list[bytes] = []
        self._leaves_lock = threading.Lock()

    # -- writing ---------------------------------------------------------------------------------
    def append(self, kind: str, body: dict, *, tenant: str | None = None, request_id: str | None = None) -> Entry:
        return self.append_many([(kind, body, tenant, request_id)])[0]

    def append_many(self, items: list[tuple[str, dict, str | None, str | None]]) -> list[Entry]:
        """Append entries in one durable transaction; returns them with their sequence numbers.

        The gateway's hot path: it runs on the driver's connection (from SQLAlchemy's pool) with
        plain parametrised SQL, which costs a few tens of microseconds where the Core statement
        layer costs most of a millisecond."""
        out = []
        with db.driver_transaction(self.engine, exclusive=True) as (cur, ph):
            if not db.is_sqlite(self.engine):
                cur.execute(f"SELECT pg_advisory_xact_lock({ph})", (_PG_LOCK,))  # the appenders' queue
            cur.execute("SELECT seq, entry_hash FROM audit_entries ORDER BY seq DESC LIMIT 1")
            row = cur.fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (0, GENESIS)
            rows = []
            for kind, body, tenant, request_id in items:
                t, b = self.clock(), canonical_json(body)
                h = leaf_hash(canonical_entry(seq, t, tenant, kind, request_id, b, prev)).hex()
                out.append(Entry(seq, t, tenant, kind, request_id, b, prev, h))
                rows.append((seq, t, tenant, kind, request_id, b, prev, h, False))
                seq, prev = seq + 1, h
            cur.executemany("INSERT INTO audit_entries (seq, time, tenant, kind, request_id, body, prev_hash, entry_hash, "
                            f"purged) VALUES ({', '.join([ph] * 9)})", rows)
        return out

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

    def leaf_hashes(self, size: int | None = None) -> list[bytes]:
        with self._leaves_lock:
            have = len(self._leaves)
            q = select(db.entries.c.seq, db.entries.c.entry_hash).where(db.entries.c.seq >= have).order_by(db.entries.c.seq)
            with self.engine.connect() as conn:
                new = conn.execution_options(yield_per=20000).execute(q).all()
            if any(seq != have + i for i, (seq, _) in enumerate(new)):
                raise VerificationError(f"the audit log has a gap after entry {have - 1}: run `charter audit verify`")
            self._leaves.extend(bytes.fromhex(h) for _, h in new)
            return self._leaves[:size] if size is not None else list(self._leaves)

    # -- checkpoints -------------------------------------------------------------------------------
    def checkpoint(self, private_key: ec.EllipticCurvePrivateKey) -> Checkpoint | None:
        """Sign the current tree head (skipped when nothing was appended since the last one)."""
        last = self.latest_checkpoint()
        leaves = self.leaf_hashes()
        if not leaves or (last and last.tree_size == len(leaves)):
            return last
        root = MerkleTree(leaves).root().hex()
        t = self.clock()
        pub = private_key.public_key()
        body = {"tree_size": len(leaves), "root_hash": root, "time": t, "log": "charter-audit/1"}
        envelope = sign_envelope(canonical_json(body).encode(), CHECKPOINT_TYPE, private_key)
        pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        row = {"tree_size": len(leaves), "root_hash": root, "time": t, "key_id": key_id(pub),
               "public_key": pem, "envelope": json.dumps(envelope)}
        with self.engine.begin() as conn:
            cid = conn.execute(db.checkpoints.insert().values(**row)).inserted_primary_key[0]
        return Checkpoint(cid, len(leaves), root, t, row["key_id"], pem, envelope)

    def checkpoints(self) -> list[Checkpoint]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.checkpoints).order_by(db.checkpoints.c.tree_size, db.checkpoints.c.id)).all()
        return [Checkpoint(**(dict(r._mapping) | {"envelope": json.loads(r.envelope)})) for r in rows]

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
               progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Walk the chain in order, then check every checkpoint's signature and root.

        ``public_keys`` pins the checkpoint signers; without it the keys recorded beside the
        checkpoints are used (which an attacker with write access could replace: pin in audits).
        """
        rep = VerifyReport()
        prev, expected, leaves = GENESIS, 0, []

        def bad(seq: int, why: str) -> VerifyReport:
            rep.first_bad, rep.problem = seq, why
            return rep

        for e in self.entries():
            rep.entries += 1
            if progress and rep.entries % 10000 == 0:
                progress(10000)
            if e.seq != expected:
                return bad(expected, f"entry {expected} is missing (deleted); the next entry present is {e.seq}")
            if e.purged:
                rep.purged += 1
            elif not e.hash_matches():
                return bad(e.seq, f"entry {e.seq} was modified: its content does not hash to its recorded hash")
            if e.prev_hash != prev:
                return bad(e.seq, f"entry {e.seq} does not follow entry {e.seq - 1} (an entry was inserted, deleted or reordered here)")
            prev, expected = e.entry_hash, expected + 1
            leaves.append(bytes.fromhex(e.entry_hash))
        tree = MerkleTree(leaves)
        cps = self.checkpoints()
        pinned = public_keys is not None
        if not pinned and cps:
            rep.notes.append("checkpoint keys taken from the database; pin them with --public-key")
        last_good = None
        for cp in cps:
            key = None
            if pinned:
                key = next((k for k in public_keys if key_id(k) == cp.key_id), None)
                if key is None:
                    return bad(min(cp.tree_size, len(leaves)) - 1, f"checkpoint {cp.id} is signed by key {cp.key_id}, not a pinned key")
            else:
                key = serialization.load_pem_public_key(cp.public_key.encode())
            try:
                body = read_envelope_json(verify_envelope(cp.envelope, key, what=f"checkpoint {cp.id}"), what=f"checkpoint {cp.id}")
            except VerificationError as exc:
                return bad(min(cp.tree_size, len(leaves)) - 1, str(exc))
            if body.get("tree_size") != cp.tree_size or body.get("root_hash") != cp.root_hash:
                return bad(min(cp.tree_size, len(leaves)) - 1, f"checkpoint {cp.id}'s row differs from what was signed")
            if cp.tree_size > len(leaves):
                return bad(len(leaves), f"the log holds {len(leaves)} entries but checkpoint {cp.id} signed {cp.tree_size}: entries from {len(leaves)} on were deleted")
            if tree.root(cp.tree_size).hex() != cp.root_hash:
                lo = last_good.tree_size if last_good else 0
                return bad(lo, f"entries {lo}..{cp.tree_size - 1} do not match signed checkpoint {cp.id} "
                               f"(the log was rewritten within that range)")
            if last_good and not verify_consistency(last_good.tree_size, cp.tree_size, bytes.fromhex(last_good.root_hash),
                                                    bytes.fromhex(cp.root_hash),
                                                    tree.consistency_proof(last_good.tree_size, cp.tree_size)):
                return bad(last_good.tree_size, f"checkpoint {cp.id} is not consistent with checkpoint {last_good.id}")
            rep.checkpoints += 1
            last_good = cp
        rep.unanchored = len(leaves) - (last_good.tree_size if last_good else 0)
        return rep

    # -- retention -------------------------------------------------------------------------------
    def purge(self, before: str, private_key: ec.EllipticCurvePrivateKey, *, actor: str = "retention") -> int:
        """Drop the content of entries older than ``before`` (ISO time). Their hashes stay, and a
        checkpoint is signed first, so the remaining log verifies against it."""
        self.checkpoint(private_key)
        with self.engine.begin() as conn:
            n = conn.execute(update(db.entries).where(db.entries.c.time < before, db.entries.c.purged.is_(False))
                             .values(body=None, purged=True)).rowcount
        self.append("admin.purge", {"before": before, "purged": n, "actor": actor})
        return n

    # -- export ----------------------------------------------------------------------------------
    def export(self, out: str | Path, private_key: ec.EllipticCurvePrivateKey, *, tenant: str | None = None,
               since: str | None = None, until: str | None = None) -> dict:
        """JSONL for a regulator: a signed checkpoint, then each selected entry with its inclusion
        proof against it. ``verify_export`` checks the file with the public key alone."""
        cp = self.checkpoint(private_key)
        if cp is None:
            raise InputError("the audit log is empty", source="audit")
        tree = MerkleTree(self.leaf_hashes(cp.tree_size))
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        tmp = out.with_suffix(out.suffix + ".part")
        with tmp.open("w") as f:
            f.write(json.dumps({"type": "checkpoint"} | cp.to_dict()) + "\n")
            for e in self.entries(tenant=tenant, since=since, until=until):
                if e.seq >= cp.tree_size:
                    break
                proof = [h.hex() for h in tree.inclusion_proof(e.seq, cp.tree_size)]
                f.write(json.dumps({"type": "entry"} | e.to_dict() | {"inclusion_proof": proof}) + "\n")
                n += 1
        tmp.replace(out)
        return {"path": str(out), "entries": n, "tree_size": cp.tree_size, "root_hash": cp.root_hash}


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
    p = Path(path)
    if not p.is_file():
        raise InputError("no such export file", source=str(p))
    lines = p.read_text().splitlines()
    try:
        head = json.loads(lines[0])
    except (IndexError, ValueError):
        raise InputError("not an audit export (no checkpoint line)", source=f"{p}:1") from None
    body = read_envelope_json(verify_envelope(head["envelope"], public_key, what="checkpoint"), what="checkpoint")
    size, root = body["tree_size"], bytes.fromhex(body["root_hash"])
    n = 0
    for i, line in enumerate(lines[1:], start=2):
        rec = json.loads(line)
        e = Entry(**{k: rec[k] for k in Entry.__dataclass_fields__})
        if not e.purged and not e.hash_matches():
            raise VerificationError(f"{p}:{i}: entry {e.seq} was modified after export")
        if not verify_inclusion(e.seq, size, bytes.fromhex(e.entry_hash), [bytes.fromhex(h) for h in rec["inclusion_proof"]], root):
            raise VerificationError(f"{p}:{i}: entry {e.seq} is not in the signed log of {size} entries")
        n += 1
    return {"entries": n, "tree_size": size, "root_hash": body["root_hash"], "checkpoint_time": body["time"]}
