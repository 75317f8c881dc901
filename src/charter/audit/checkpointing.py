"""Signing and reading the log's checkpoints (signed tree heads), and proofs against them: the
checkpoint half of ``charter.audit.log.AuditLog``, kept apart so the log's append/read/verify
code stays readable."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select, text

from charter.audit import db
from charter.audit.checks import check_last
from charter.audit.entries import (
    _PG_CHECKPOINT_LOCK,
    CHECKPOINT_TYPE,
    LOG_ID,
    Checkpoint,
    _checkpoint,
    _hex,
    canonical_json,
)
from charter.audit.merkle import MerkleTree, verify_consistency
from charter.core.errors import VerificationError
from charter.provenance.dsse import sign_envelope
from charter.provenance.keys import key_id


class CheckpointsMixin:
    """Checkpoint methods of ``AuditLog``; they use its ``engine``, ``clock``, ``witness``,
    ``earlier_keys``, ``_verified`` and ``leaf_hashes``."""

    def checkpoint(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        *,
        witness=None,
        trusted_keys: list[ec.EllipticCurvePublicKey] | None = None,
        covering: int | None = None,
    ) -> Checkpoint | None:
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
                raise VerificationError(
                    f"the audit log is empty but checkpoint {last.id} signed {last.tree_size} entries: "
                    "refusing to sign or prove; run `charter audit verify`"
                )
            return None
        if self._last_still_serves(last, len(leaves), covering):
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
            signed = check_last(last, tree, keys) if last is not None else None
            if last is None or last.tree_size < tree.size:
                created = self._insert_checkpoint(conn, tree, last, signed, private_key)
        newest = created or last
        self._verified = (newest.id, newest.root_hash)
        if witness is not None:
            witness.publish(created) if created is not None else witness.flush()
        return newest

    def _last_still_serves(self, last: Checkpoint | None, n_leaves: int, covering: int | None) -> bool:
        """Whether the last checkpoint, already checked or signed by this process, covers the log
        (or at least the entry ``covering``), so no new one is needed."""
        return (
            last is not None
            and self._verified == (last.id, last.root_hash)
            and (last.tree_size == n_leaves or (covering is not None and covering < last.tree_size <= n_leaves))
        )

    def _insert_checkpoint(
        self,
        conn,
        tree: MerkleTree,
        last: Checkpoint | None,
        signed: dict | None,
        private_key: ec.EllipticCurvePrivateKey,
    ) -> Checkpoint:
        """Sign the checkpoint after ``last`` and insert its row (inside the caller's locked transaction)."""
        chained = signed is not None and isinstance(signed.get("index"), int)
        count = 0 if chained else conn.execute(select(func.count()).select_from(db.checkpoints)).scalar()
        body = self._chained_body(tree, last, signed, count)
        envelope = sign_envelope(canonical_json(body).encode(), CHECKPOINT_TYPE, private_key)
        pub = private_key.public_key()
        pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        row = {
            "tree_size": body["tree_size"],
            "root_hash": body["root_hash"],
            "time": body["time"],
            "key_id": key_id(pub),
            "public_key": pem,
            "envelope": json.dumps(envelope),
        }
        cid = conn.execute(db.checkpoints.insert().values(**row)).inserted_primary_key[0]
        return Checkpoint(cid, **(row | {"envelope": envelope}))

    @staticmethod
    def _last_row(conn) -> Checkpoint | None:
        row = conn.execute(
            select(db.checkpoints).order_by(db.checkpoints.c.tree_size.desc(), db.checkpoints.c.id.desc()).limit(1)
        ).first()
        return _checkpoint(row) if row else None

    def _chained_body(self, tree: MerkleTree, last: Checkpoint | None, signed: dict | None, count: int) -> dict:
        """The body of the checkpoint after ``last`` (its signed body ``signed``, already verified
        by ``checks.check_last``)."""
        n, root = tree.size, tree.root()
        prev, proof, index = None, [], count
        if last is not None:
            old_root = _hex(signed.get("root_hash"))
            proof = tree.consistency_proof(last.tree_size, n) if last.tree_size >= 1 else []
            if last.tree_size < 1 or not verify_consistency(last.tree_size, n, old_root, root, proof):
                raise VerificationError(
                    f"the audit log no longer extends checkpoint {last.id} ({last.tree_size} entries): "
                    "refusing to sign it; run `charter audit verify`"
                )
            prev = {"digest": last.digest, "tree_size": last.tree_size, "root_hash": old_root.hex()}
            if isinstance(signed.get("index"), int):
                index = signed["index"] + 1
        return {
            "log": LOG_ID,
            "tree_size": n,
            "root_hash": root.hex(),
            "time": self.clock(),
            "index": index,
            "prev": prev,
            "consistency_proof": [h.hex() for h in proof],
        }

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
