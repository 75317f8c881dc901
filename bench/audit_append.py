"""Durable hash-chained audit appends vs plain inserts into the same database, same run, on
SQLite (WAL, synchronous=NORMAL, the gateway default) and PostgreSQL (127.0.0.1:5432); one
transaction per entry in both. Then verification speed, extrapolated per million entries.
Target: appends >= 0.5x plain inserts.

    .venv/bin/python bench/audit_append.py [--n 2000] [--verify-entries 200000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import print_table, write_results  # noqa: E402

from charter.audit import AuditLog, connect, db, utc_now  # noqa: E402
from charter.audit.entries import canonical_json  # noqa: E402

BODY = {
    "model": "charter-test",
    "messages": [{"role": "user", "content": "What is the capital of France? " * 4}],
    "params": {"max_tokens": 256, "temperature": 0.7},
}


def plain_inserts(engine, n: int) -> float:
    """The same driver path the audit log's append uses (SQLAlchemy's pooled DBAPI connection,
    parametrised SQL, one transaction per entry), without the chain: no lock, no head read, no hash."""
    t0 = time.perf_counter()
    for i in range(n):
        with db.driver_transaction(engine) as (cur, ph):
            cur.execute(
                f"INSERT INTO audit_plain (time, tenant, kind, request_id, body) VALUES ({', '.join([ph] * 5)})",
                (utc_now(), "acme", "chat.request", f"r{i}", canonical_json(BODY | {"i": i})),
            )
    return time.perf_counter() - t0


def chained_appends(log: AuditLog, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        log.append("chat.request", BODY | {"i": i}, tenant="acme", request_id=f"r{i}")
    return time.perf_counter() - t0


def run(name: str, url: str, n: int, verify_entries: int) -> dict:
    engine = connect(url)
    log = AuditLog(engine)
    # Warm both paths, then interleave halves so drift in machine load hits both alike.
    plain_inserts(engine, 50)
    chained_appends(log, 50)
    p = c = 0.0
    for _ in range(2):
        p += plain_inserts(engine, n // 2)
        c += chained_appends(log, n // 2)
    row = {"database": name, "plain_per_s": round(n / p, 1), "chained_per_s": round(n / c, 1), "ratio": round(p / c, 3)}
    # Verification: fill in batches (one transaction per 1000 entries) up to verify_entries.
    have = log.size()
    batch = [("chat.request", BODY, "acme", None)] * 1000
    while have < verify_entries:
        log.append_many(batch[: min(1000, verify_entries - have)])
        have = log.size()
    import cryptography.hazmat.primitives.asymmetric.ec as ec

    key = ec.generate_private_key(ec.SECP256R1())
    log.checkpoint(key)
    t0 = time.perf_counter()
    rep = log.verify([key.public_key()])
    v = time.perf_counter() - t0
    assert rep.ok, rep.problem
    row |= {
        "verify_entries": rep.entries,
        "verify_s": round(v, 2),
        "verify_s_per_million": round(v / rep.entries * 1e6, 1),
    }
    engine.dispose()
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--verify-entries", type=int, default=200_000)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        rows.append(run("sqlite", f"sqlite:///{d}/audit.db", args.n, args.verify_entries))
    try:
        import tests.db_fixtures as fx

        fx.PG_ADMIN = args.pg
        if fx._pg_available():
            url, drop = fx.fresh_pg_database()
            try:
                rows.append(run("postgresql", url, args.n, args.verify_entries))
            finally:
                drop()
        else:
            print(f"PostgreSQL not reachable at {args.pg}: skipped")
    except ImportError as exc:
        print(f"PostgreSQL skipped: {exc}")
    print_table(
        rows,
        ["database", "plain_per_s", "chained_per_s", "ratio", "verify_entries", "verify_s", "verify_s_per_million"],
    )
    path = write_results("audit_append", {"n": args.n, "target_ratio": 0.5, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
