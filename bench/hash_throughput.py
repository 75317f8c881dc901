"""Seal and verify throughput on ~1 GiB of model files vs `sha256sum` over the same files.

Four 256 MiB files of random bytes (a model's shards), page cache warmed first; one process.
Baseline: coreutils `sha256sum` reading every file in one stream. Charter: `Sealer.seal` (model-
signing manifest of per-file sha256 + signature + provenance statement) and `verify_model`, with 1
worker (single stream, comparable to sha256sum) and 2 workers (files hashed in parallel).
Target: single-worker seal/verify >= 0.9x sha256sum's throughput. `openssl dgst -sha256` is
reported too: coreutils sha256sum lacks the SHA-NI path that OpenSSL (and so Python's hashlib)
uses, which makes it a slow baseline on CPUs that have SHA extensions.

    .venv/bin/python bench/hash_throughput.py [--files 4] [--mib 256] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _util import print_table, write_results  # noqa: E402

from charter.provenance import SealConfig, Sealer, generate_keypair, verify_model  # noqa: E402

PASS = b"bench-passphrase"


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dir", default=None, help="where to write the test files (default: a temp dir)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(dir=args.dir, prefix="charter-hash-"))
    try:
        model = root / "model"
        model.mkdir()
        for i in range(args.files):
            with open(model / f"model-{i:05d}-of-{args.files:05d}.safetensors", "wb") as f:
                for _ in range(args.mib):
                    f.write(os.urandom(1 << 20))
        (model / "config.json").write_text('{"model_type": "bench"}')
        files = sorted(str(p) for p in model.iterdir())
        total = sum(os.path.getsize(f) for f in files)
        priv, pub = generate_keypair(root / "keys", PASS)
        subprocess.run(["sha256sum", *files], check=True, capture_output=True)  # warm the page cache

        def seal(workers):
            return lambda: Sealer(
                SealConfig(
                    model_dir=str(model), constitution="default", key=str(priv), max_workers=workers, overwrite=True
                ),
                PASS,
            ).seal()

        def verify(workers):
            return lambda: verify_model(model, pub, max_workers=workers)

        rows = []
        base = timed(lambda: subprocess.run(["sha256sum", *files], check=True, capture_output=True), args.repeats)
        rows.append({"run": "sha256sum (single stream)", "seconds": base})
        # coreutils' sha256sum has no SHA-NI code path; OpenSSL (which Python's hashlib uses) does,
        # so `openssl dgst` is the fair single-stream reference on CPUs that have it.
        ossl = timed(
            lambda: subprocess.run(["openssl", "dgst", "-sha256", *files], check=True, capture_output=True),
            args.repeats,
        )
        rows.append({"run": "openssl dgst -sha256 (single stream)", "seconds": ossl})
        for name, fn in (
            ("seal, 1 worker", seal(1)),
            ("seal, 2 workers", seal(2)),
            ("verify, 1 worker", verify(1)),
            ("verify, 2 workers", verify(2)),
        ):
            rows.append({"run": name, "seconds": timed(fn, args.repeats)})
        for r in rows:
            r["MiB_per_s"] = round(total / (1 << 20) / r["seconds"], 1)
            r["vs_sha256sum"] = round(base / r["seconds"], 3)
            r["vs_openssl"] = round(ossl / r["seconds"], 3)
            r["seconds"] = round(r["seconds"], 2)
        by = {r["run"]: r for r in rows}
        speedup = {
            "seal": round(by["seal, 1 worker"]["seconds"] / by["seal, 2 workers"]["seconds"], 2),
            "verify": round(by["verify, 1 worker"]["seconds"] / by["verify, 2 workers"]["seconds"], 2),
        }
        print(f"{total / (1 << 30):.2f} GiB in {len(files)} files, cores: {os.cpu_count()}")
        print_table(rows, ["run", "seconds", "MiB_per_s", "vs_sha256sum", "vs_openssl"])
        print(
            f"parallel speed-up with 2 workers: seal {speedup['seal']}x, verify {speedup['verify']}x "
            "(target single worker >= 0.9x sha256sum)"
        )
        path = write_results(
            "hash_throughput",
            {
                "bytes": total,
                "files": len(files),
                "cores": os.cpu_count(),
                "rows": rows,
                "parallel_speedup": speedup,
                "target_vs_sha256sum": 0.9,
            },
        )
        print(f"results: {path}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
