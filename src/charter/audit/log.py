"""``AuditLog``: append, list, checkpoint, prove, verify, purge and export (see ``charter.audit.entries``
for what an entry and a checkpoint are)."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, or_, select
from sqlalchemy.engine import Engine

from charter.audit import db
from charter.audit.checkpointing import CheckpointsMixin
from charter.audit.checks import (
    _check_purged,
    _first_chained_size,
    _headers_digest,
    _json_object,
    _legacy_mismatch,
    _purge_of,
    _purge_record_problem,
    _Purges,
    _unsigned_excess,
    _verify_trusted,
    verify_checkpoints,
    verify_keys,
)
from charter.audit.entries import (
    _COLUMNS,
    _INSERT,
    _PG_LOCK,
    GENESIS,
    LOG_ID,
    PURGE_KIND,
    PURGE_TYPE,
    Entry,
    VerifyReport,
    _row,
    body_digest,
    canonical_json,
    digest_entry,
)
from charter.audit.merkle import MerkleTree, leaf_hash
from charter.core.clock import utc_now
from charter.core.errors import InputError, VerificationError
from charter.core.io import write_jsonl_atomic
from charter.provenance.dsse import sign_envelope


class AuditLog(CheckpointsMixin):
    """The log; checkpoint signing, reading and proofs come from ``CheckpointsMixin``
    (``charter.audit.checkpointing``)."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], str] = utc_now,
        witness=None,
        earlier_keys: list[ec.EllipticCurvePublicKey] | None = None,
    ):
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

    def entries(
        self,
        *,
        tenant: str | None = None,
        since: str | None = None,
        until: str | None = None,
        request_id: str | None = None,
        kinds: list[str] | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        batch: int = 5000,
        session: str | None = None,
    ) -> Iterator[Entry]:
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
            q = (
                select(db.entries.c.seq, db.entries.c.entry_hash)
                .where(db.entries.c.seq >= have)
                .order_by(db.entries.c.seq)
            )
            if conn is not None:
                new = conn.execute(q).all()
            else:
                with self.engine.connect() as c:
                    new = c.execution_options(yield_per=20000).execute(q).all()
            if any(seq != have + i for i, (seq, _) in enumerate(new)):
                raise VerificationError(f"the audit log has a gap after entry {have - 1}: run `charter audit verify`")
            self._leaves.extend(bytes.fromhex(h) for _, h in new)
            return self._leaves[:size] if size is not None else list(self._leaves)

    # -- verification ----------------------------------------------------------------------------
    def verify(
        self,
        public_keys: list[ec.EllipticCurvePublicKey] | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        trusted: list[dict] | None = None,
    ) -> VerifyReport:
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
        keys = verify_keys(public_keys, trusted, cps, rep)
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
                return bad(
                    e.seq,
                    f"entry {e.seq} does not follow entry {e.seq - 1} "
                    "(an entry was inserted, deleted or reordered here)",
                )
            prev, expected = e.entry_hash, expected + 1
            leaves.append(bytes.fromhex(e.entry_hash))
        for p in purges.values():
            if p.problem is None and (why := _legacy_mismatch(p) if p.signed else _unsigned_excess(p)):
                return bad(p.headers[0][0] if p.headers else p.seq, why)
        if legacy_purged:
            rep.notes.append(
                f"{legacy_purged} entries were purged before purges were signed: their headers are not bound "
                "to a content hash"
            )
        tree = MerkleTree(leaves)
        why_at = verify_checkpoints(cps, keys, pinned, tree, rep)
        if why_at:
            return bad(why_at[0], why_at[1])
        if trusted:
            why_at = _verify_trusted(trusted, keys, cps, tree)
            if why_at:
                return bad(why_at[0], why_at[1])
            rep.trusted = len(trusted)
        return rep

    def _purges(self, keys) -> _Purges:
        """Every purge entry, with the cutoff its signature authorises (or why it authorises nothing)."""
        return _Purges([_purge_of(e, keys) for e in self.entries(kinds=[PURGE_KIND])])

    def purge(
        self,
        before: str,
        private_key: ec.EllipticCurvePrivateKey,
        *,
        actor: str = "retention",
        reason: str = "retention period",
    ) -> int:
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
            cur.execute(
                f"SELECT COUNT(*) FROM audit_entries WHERE {where} AND body_sha256 IS NOT NULL",
                (before, seq, PURGE_KIND),
            )
            n = cur.fetchone()[0]
            legacy = self._legacy_headers(cur, where, (before, seq, PURGE_KIND))
            if not n and not legacy:
                return 0  # nothing to empty: no entry (hourly retention would otherwise add one each hour)
            signed = {
                "log": LOG_ID,
                "seq": seq,
                "prev_hash": prev,
                "before": before,
                "actor": actor,
                "reason": reason,
                "purged": n + len(legacy),
                "legacy": {"count": len(legacy), "sha256": _headers_digest(legacy)},
            }
            envelope = sign_envelope(canonical_json(signed).encode(), PURGE_TYPE, private_key)
            body = {k: signed[k] for k in ("before", "actor", "reason", "purged", "legacy")} | {
                "authorisation": envelope
            }
            e = self._entry(seq, PURGE_KIND, canonical_json(body), None, None, prev)
            cur.execute(_INSERT.format(ph=", ".join([ph] * len(_COLUMNS))), _row(e))
            cur.execute(
                f"UPDATE audit_entries SET body = NULL, purged = {ph} WHERE {where}", (True, before, seq, PURGE_KIND)
            )
        return n + len(legacy)

    def _legacy_headers(self, cur, where: str, params: tuple) -> list[list]:
        """Headers of the earlier-form entries a purge is about to empty (no body digest was kept
        for them, so the purge signs their headers); refuses to bless content already tampered with."""
        cur.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM audit_entries WHERE {where} AND body_sha256 IS NULL ORDER BY seq",
            params,
        )
        out = []
        for r in cur.fetchall():
            e = Entry(*r)
            if not e.legacy_form_matches():
                raise VerificationError(f"entry {e.seq} was modified: refusing to purge it; run `charter audit verify`")
            out.append(e.header())
        return out

    # -- export ----------------------------------------------------------------------------------
    def export(
        self,
        out: str | Path,
        private_key: ec.EllipticCurvePrivateKey,
        *,
        tenant: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> dict:
        """JSONL for a regulator: a signed checkpoint, then each selected entry with its inclusion
        proof against it, then the signed purge entries that emptied any of them, each with the
        headers of the earlier-form entries it emptied (what its signed ``legacy`` digest covers).
        ``verify_export`` checks the file with the public key alone. Created 0600: it holds
        tenants' content."""
        cp = self.checkpoint(private_key)
        if cp is None:
            raise InputError("the audit log is empty", source="audit")
        tree = MerkleTree(self.leaf_hashes(cp.tree_size))
        emptied_by = self._purge_finder(cp.tree_size)
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
                yield (
                    {"type": "purge"}
                    | p.to_dict()
                    | {"inclusion_proof": proof, "legacy_headers": legacy.get(p.seq, [])}
                )

        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(out, lines(), private=True)
        n = counted[0]
        return {"path": str(out), "entries": n, "tree_size": cp.tree_size, "root_hash": cp.root_hash}

    def _purge_finder(self, size: int) -> Callable[[Entry, bool], Entry | None]:
        """``emptied_by(e, signed_only)``: the first purge (among the first ``size`` entries) after
        ``e`` whose cutoff covers it (the one that emptied it); ``signed_only``: signed purges only."""
        purges = [(p, _json_object(p.body)) for p in self.entries(kinds=[PURGE_KIND]) if p.seq < size]
        seqs = [p.seq for p, _ in purges]

        def emptied_by(e: Entry, signed_only: bool) -> Entry | None:
            for p, d in purges[bisect.bisect_right(seqs, e.seq) :]:
                if (
                    isinstance(d.get("before"), str)
                    and e.time < d["before"]
                    and (not signed_only or "authorisation" in d)
                ):
                    return p
            return None

        return emptied_by

    def _legacy_emptied(self, size: int, emptied_by, purges: dict[int, Entry]) -> dict[int, list[list]]:
        """Headers of the earlier-form entries (no kept body digest) without content, by the purge
        that emptied them, for those of ``purges`` that signed emptying any (read only then)."""
        if not any(
            isinstance(_json_object(p.body).get("legacy"), dict) and _json_object(p.body)["legacy"].get("count")
            for p in purges.values()
        ):
            return {}
        c = db.entries.c
        q = (
            select(db.entries)
            .where(c.seq < size, c.body_sha256.is_(None), or_(c.body.is_(None), c.body == ""))
            .order_by(c.seq)
        )
        out: dict[int, list[list]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                e = Entry(**r._mapping)
                p = emptied_by(e, False)
                if p is not None and p.seq in purges:
                    out.setdefault(p.seq, []).append(e.header())
        return out
