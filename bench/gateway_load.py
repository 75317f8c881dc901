"""Gateway throughput and added latency: the same requests sent to a fast stub upstream directly
and through `charter serve` in front of it, in one run, at concurrency 1 and 32.

Everything runs on this machine: stub and gateway are subprocesses, the load generator is this
process (aiohttp, asyncio). The gateway writes its SQLite audit log (4 entries, one commit, per
request) and signs a receipt per answer. Run "guard" adds the stage-1 input and output classifiers
(MiniLM, trained here on the bundled samples; nothing escalates since no stage 2 is configured).
Run "compliance" enables cac-genai + cac-anthropomorphic + eu-ai-act-art50 (session state per
end user in the database, disclosures, labels); requests carry one of 64 session ids.
Targets: added p50 <= 3 ms when nothing escalates; throughput >= 50% of direct.

    .venv/bin/python bench/gateway_load.py [--requests 400] [--rounds 3] [--no-guard]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
from _util import print_table, write_results  # noqa: E402

from charter.audit import connect  # noqa: E402
from charter.gateway.tenants import add_tenant  # noqa: E402
from tests.servers.openai_server import free_port  # noqa: E402


def wait_up(url: str, proc: subprocess.Popen, path: str) -> None:
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(url + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.args}")
        time.sleep(0.2)
    raise SystemExit(f"server did not start: {proc.args}")


async def load(url: str, key: str | None, model: str, n: int, concurrency: int, sessions: int = 64) -> dict:
    """aiohttp as the load generator: it spends little CPU per request, so on a small machine the
    client steals less from the servers it measures (the same client for both paths)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    lat: list[float] = []
    counter = [0]
    stages: dict[str, list[float]] = {}
    body = {"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as c:

        async def one():
            t0 = time.perf_counter()
            counter[0] += 1  # end users: requests spread over `sessions` sessions (compliance state)
            h = headers | {"X-Charter-Session": f"user-{counter[0] % sessions}"}
            async with c.post(url + "/chat/completions", json=body, headers=h) as r:
                r.raise_for_status()
                await r.read()
                timing = r.headers.get("Server-Timing")
            if timing:  # the gateway's own account of where its time went
                for part in timing.split(","):
                    name, _, dur = part.strip().partition(";dur=")
                    stages.setdefault(name, []).append(float(dur))
            return time.perf_counter() - t0

        for _ in range(min(20, n)):  # warm-up
            await one()
        left = [n]

        async def worker():
            while left[0] > 0:
                left[0] -= 1
                lat.append(await one())

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {
        "rps": n / wall,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[int(0.99 * (len(lat) - 1))] * 1000,
        "stages_p50_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
    }


def train_guard(d: Path) -> Path:
    from charter.core.io import load_prompts
    from charter.evals.run import DEFAULT_PROMPTS
    from charter.guard.training import GuardTrainConfig, GuardTrainer

    harmful = [p.text for p in load_prompts(DEFAULT_PROMPTS["harmlessness"])]
    benign = [p.text for p in load_prompts(DEFAULT_PROMPTS["over-refusal"])]
    rows = [{"text": t, "label": "harmful", "side": s} for t in harmful for s in ("input", "output")]
    rows += [{"text": t, "label": "benign", "side": s} for t in benign for s in ("input", "output")]
    import random

    random.Random(0).shuffle(rows)
    (d / "gdata").mkdir()
    for name, part in (("train.jsonl", rows[0::2]), ("val.jsonl", rows[1::2])):
        (d / "gdata" / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    GuardTrainer(GuardTrainConfig(data=str(d / "gdata"), out=str(d / "guard"))).train()
    return d / "guard"


def _median_stages(runs_: list[dict]) -> dict:
    """Per Server-Timing stage, the median over rounds of each round's p50."""
    stages = {k for r in runs_ for k in r.get("stages_p50_ms", {})}
    return {
        k: round(statistics.median(r["stages_p50_ms"][k] for r in runs_ if k in r.get("stages_p50_ms", {})), 3)
        for k in sorted(stages)
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--no-guard", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    procs = []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        stub_port = free_port()
        stub = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/servers/stub_upstream.py"), "--port", str(stub_port)]
        )
        procs.append(stub)
        stub_url = f"http://127.0.0.1:{stub_port}/v1"
        wait_up(stub_url, stub, "/models")
        runs = [
            ("gateway (audit + receipts)", None, 1, False),
            ("gateway, 2 worker processes", None, 2, False),
            ("gateway + 3 compliance profiles", None, 1, True),
        ]
        if not args.no_guard:
            runs.append(("gateway + stage-1 guard", train_guard(d), 1, False))
        gateways = []
        for i, (name, guard, workers, profiled) in enumerate(runs):
            db_url = f"sqlite:///{d}/audit-{i}.db"
            engine = connect(db_url)
            key = add_tenant(engine, "bench", rate_limit_rpm=10**9)
            engine.dispose()
            cfg = d / f"gateway-{i}.toml"
            cfg.write_text(
                f'[server]\ndatabase = "{db_url}"\nruntime_key = "rt.pem"\nsystem_prompt = "none"\n'
                f'log_requests = false\n[upstream]\nmodel = "openai:{stub_url}#stub"\nmodel_id = "m"\n'
                + (f'[guard]\npath = "{guard}"\n' if guard else "")
                + (
                    '[compliance]\nprofiles = ["cac-genai", "cac-anthropomorphic", "eu-ai-act-art50"]\n'
                    if profiled
                    else ""
                )
            )
            port = free_port()
            p = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "charter.cli.main",
                    "serve",
                    "--config",
                    str(cfg),
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=d,
            )
            procs.append(p)
            wait_up(f"http://127.0.0.1:{port}/v1", p, "/attestation")
            gateways.append((name, f"http://127.0.0.1:{port}/v1", key))
        try:
            # Rounds interleave the paths so drift in machine load hits them alike; medians reported.
            for conc in (1, 32):
                per = {name: [] for name in ["direct to stub"] + [g[0] for g in gateways]}
                for _ in range(args.rounds):
                    per["direct to stub"].append(asyncio.run(load(stub_url, None, "stub", args.requests, conc)))
                    for name, url, key in gateways:
                        per[name].append(asyncio.run(load(url, key, "m", args.requests, conc)))
                direct = {
                    k: statistics.median(r[k] for r in per["direct to stub"]) for k in ("rps", "p50_ms", "p99_ms")
                }
                for name, runs_ in per.items():
                    m = {k: statistics.median(r[k] for r in runs_) for k in ("rps", "p50_ms", "p99_ms")}
                    rows.append(
                        {
                            "concurrency": conc,
                            "path": name,
                            "rps": round(m["rps"], 1),
                            "p50_ms": round(m["p50_ms"], 2),
                            "p99_ms": round(m["p99_ms"], 2),
                            "added_p50_ms": round(m["p50_ms"] - direct["p50_ms"], 2),
                            "throughput_vs_direct": round(m["rps"] / direct["rps"], 3),
                            "server_timing_p50_ms": _median_stages(runs_),
                        }
                    )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(20)
    print_table(rows, ["concurrency", "path", "rps", "p50_ms", "p99_ms", "added_p50_ms", "throughput_vs_direct"])
    print("\ngateway-side stage medians (Server-Timing, ms):")
    for r in rows:
        if r["server_timing_p50_ms"]:
            print(
                f"  c={r['concurrency']:<3} {r['path']:<30} "
                + "  ".join(f"{k}={v}" for k, v in r["server_timing_p50_ms"].items())
            )
    path = write_results(
        "gateway_load",
        {
            "requests": args.requests,
            "rounds": args.rounds,
            "cores": os.cpu_count(),
            "targets": {"added_p50_ms": 3.0, "throughput_vs_direct": 0.5},
            "rows": rows,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
