"""Verification helpers: purges and what they may empty, the checkpoint chain, trusted roots."""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from charter.audit.entries import (
    CHECKPOINT_TYPE,
    PURGE_TYPE,
    Checkpoint,
    Entry,
    VerifyReport,
    _hex,
    _payload,
    _Purge,
    canonical_json,
    open_signed,
)
from charter.audit.merkle import MerkleTree, verify_consistency
from charter.core.errors import VerificationError
from charter.provenance.keys import key_id


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
            return _Purge(
                e.seq,
                "",
                False,
                problem=f"purge entry {e.seq} has no content: the entries it emptied cannot be accounted for",
            )
        # Written before purges were signed (hashed in an earlier form), or forged.
        legacy = e.body_sha256 is None and not e.empty and e.legacy_form_matches()
        recorded = data.get("purged") if type(data.get("purged")) is int else 0
        return _Purge(
            e.seq,
            before,
            False,
            recorded=recorded,
            problem=None if legacy else f"purge entry {e.seq} is not signed (forged)",
        )
    try:
        signed = open_signed(data["authorisation"], keys, PURGE_TYPE, what=f"purge entry {e.seq}")
    except VerificationError as exc:
        return _Purge(e.seq, before, False, problem=f"{exc} (a forged purge)")
    if signed.get("seq") != e.seq or signed.get("prev_hash") != e.prev_hash:
        return _Purge(
            e.seq, before, False, problem=f"purge entry {e.seq} carries a signature made for another place in the log"
        )
    if not isinstance(signed.get("before"), str) or any(
        signed.get(k) != data.get(k) for k in ("before", "actor", "reason", "purged", "legacy")
    ):
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
        for p in self.valid[bisect.bisect_right(self.seqs, e.seq) :]:
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
            return (
                f"entry {e.seq} was modified: its header and kept body digest do not hash to its recorded hash "
                "(its content was purged)"
            ), 0
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


def _purge_record_problem(e: Entry, purges: _Purges, first_chained: int | None) -> str | None:
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
        return (
            f"{len(p.headers)} entries without content are attributed to purge entry {p.seq} (written before purges "
            f"were signed), which recorded emptying {p.recorded}: content was deleted and headers rewritten since"
        )
    return None


def _legacy_mismatch(p: _Purge) -> str | None:
    want = p.legacy if isinstance(p.legacy, dict) else {"count": 0, "sha256": _headers_digest([])}
    if len(p.headers) != want.get("count") or _headers_digest(p.headers) != want.get("sha256"):
        return (
            f"the earlier-form entries emptied by purge entry {p.seq} differ from what it signed "
            "(their headers were rewritten, or more entries were emptied)"
        )
    return None


def _link_problem(cp: Checkpoint, body: dict, i: int, last: Checkpoint | None) -> str | None:
    """Why a chained checkpoint does not link to the checkpoint before it, else None."""
    if body.get("index") != i:
        return (
            f"checkpoint {cp.id} was signed as checkpoint #{body.get('index')} but is #{i} in the log: "
            "checkpoints were deleted, inserted or reordered"
        )
    prev = body.get("prev")
    if last is None:
        return None if prev is None else f"checkpoint {cp.id} links to a predecessor the log no longer holds (deleted)"
    if prev != {"digest": last.digest, "tree_size": last.tree_size, "root_hash": last.root_hash}:
        return (
            f"checkpoint {cp.id} does not link to checkpoint {last.id} before it "
            "(checkpoints were deleted, inserted, reordered or re-signed)"
        )
    proof = body.get("consistency_proof")
    if not isinstance(proof, list) or not verify_consistency(
        last.tree_size, cp.tree_size, _hex(last.root_hash), _hex(cp.root_hash), [_hex(h) for h in proof]
    ):
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
            return matched, (
                f"entries {matched}..{size - 1} do not match {label}: the log was rewritten "
                "(and its checkpoints deleted or re-signed) after it"
            )
        if digest not in have:
            return size - 1, f"{label} is not among the log's checkpoints: checkpoints were deleted or replaced"
        matched = size
    return None


def check_last(last: Checkpoint, tree: MerkleTree, keys: list[ec.EllipticCurvePublicKey]) -> dict:
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
        how = (
            f"if {', '.join(other)} is an earlier runtime key of this gateway, verify the log with it "
            "(`charter audit verify --public-key OLD.pub.pem`) and give it to the checkpointer as an earlier key "
            "(AuditLog(earlier_keys=...) or checkpoint(trusted_keys=...)); otherwise the row was forged: "
            "run `charter audit verify`"
            if other
            else "the row was forged: run `charter audit verify`"
        )
        raise VerificationError(
            f"the last checkpoint ({last.id}, {last.tree_size} entries) does not verify with this "
            f"gateway's key {key_id(keys[0])} ({exc}); refusing to sign or prove: {how}"
        ) from None
    if signed.get("tree_size") != last.tree_size or signed.get("root_hash") != last.root_hash:
        raise VerificationError(
            f"checkpoint {last.id}'s row differs from what was signed: refusing to sign; run `charter audit verify`"
        )
    if not isinstance(last.tree_size, int) or last.tree_size > n:
        raise VerificationError(
            f"the last checkpoint ({last.id}) signed {last.tree_size} entries but the log holds {n}: "
            "entries were deleted; refusing to sign; run `charter audit verify`"
        )
    if last.tree_size == n and tree.root().hex() != last.root_hash:
        raise VerificationError(
            f"the audit log no longer matches checkpoint {last.id} ({last.tree_size} entries): "
            "refusing to sign or prove; run `charter audit verify`"
        )
    return signed


def verify_keys(public_keys, trusted, cps: list[Checkpoint], rep: VerifyReport) -> list[ec.EllipticCurvePublicKey]:
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


def verify_checkpoints(
    cps: list[Checkpoint], keys, pinned: bool, tree: MerkleTree, rep: VerifyReport
) -> tuple[int, str] | None:
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
            return (
                n,
                f"the log holds {n} entries but checkpoint {cp.id} signed {cp.tree_size}: "
                f"entries from {n} on were deleted",
            )
        if tree.root(cp.tree_size).hex() != cp.root_hash:
            return lo, (
                f"entries {lo}..{cp.tree_size - 1} do not match signed checkpoint {cp.id} "
                f"(the log was rewritten within that range)"
            )
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
