"""Checking an exported slice of the log offline (an auditor holding the public key)."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from charter.audit.checks import _check_purged, _legacy_mismatch, _purge_of, _Purges
from charter.audit.entries import CHECKPOINT_TYPE, Entry, _hex, canonical_json, open_signed
from charter.audit.merkle import verify_inclusion
from charter.core.errors import InputError, VerificationError

# One checked line of an export: (line number, record type, entry, raw record).
_Record = tuple[int, str | None, Entry, dict]


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
    records = [_checked_record(p, i, line, size, root) for i, line in enumerate(lines[1:], start=2)]
    purges = _Purges([_purge_of(e, [public_key]) for _, t, e, _ in records if t == "purge"])
    listed = _signed_legacy_headers(p, records, purges)
    _check_emptied_entries(p, records, purges, listed)
    n = sum(t == "entry" for _, t, _, _ in records)
    return {"entries": n, "tree_size": size, "root_hash": body["root_hash"], "checkpoint_time": body["time"]}


def _checked_record(p: Path, i: int, line: str, size: int, root: bytes) -> _Record:
    """Line ``i`` parsed, its content checked against its hash (unless emptied) and its inclusion
    proof against the signed root of ``size`` entries."""
    try:
        rec = json.loads(line)
        e = Entry(**{k: rec.get(k) for k in Entry.__dataclass_fields__})
        if not isinstance(e.body, (str, type(None))):
            raise TypeError("body")
    except (ValueError, TypeError, AttributeError):
        raise InputError("not an audit export line", source=f"{p}:{i}") from None
    if e.purged and not e.empty:
        raise VerificationError(
            f"{p}:{i}: entry {e.seq} is flagged purged but still has content (the flag was set by hand)"
        )
    if not e.empty and not e.hash_matches():
        raise VerificationError(f"{p}:{i}: entry {e.seq} was modified: its content does not hash to its recorded hash")
    if not isinstance(e.seq, int) or not verify_inclusion(
        e.seq, size, _hex(e.entry_hash), [_hex(h) for h in rec.get("inclusion_proof") or []], root
    ):
        raise VerificationError(f"{p}:{i}: entry {e.seq} is not in the signed log of {size} entries")
    return (i, rec.get("type"), e, rec)


def _signed_legacy_headers(p: Path, records: list[_Record], purges: _Purges) -> dict[int, set[str]]:
    """Per signed purge in the file: the earlier-form headers it signed emptying (each purge's
    signature and its list's signed digest checked)."""
    listed: dict[int, set[str]] = {}
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
    return listed


def _check_emptied_entries(p: Path, records: list[_Record], purges: _Purges, listed: dict[int, set[str]]) -> None:
    """Every entry without content (or flagged purged) must be authorised by a signed purge in the file."""
    for i, _t, e, _ in records:
        if not (e.empty or e.purged):
            continue
        if e.empty and e.body_sha256 is None:
            # Earlier form (no kept digest): its header must be one a signed purge signed emptying.
            h = canonical_json(e.header())
            if not any(q.signed and h in listed.get(q.seq, ()) for q in purges.covering(e)):
                raise VerificationError(
                    f"{p}:{i}: entry {e.seq} has no content and no kept body digest, and no signed purge in the file "
                    "signed emptying it with this header (its content was deleted and its header rewritten, or it was "
                    "purged before purges were signed: its header cannot be checked offline)"
                )
            continue
        why, _ = _check_purged(e, purges, None)
        if why:
            raise VerificationError(f"{p}:{i}: {why}")
