"""The development sets in ../shared/data, loaded and split into seeded halves the same way by
every guard benchmark (train on one half, test on the other)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from charter.data import load_prompts

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def halves(items: list, seed: int = 0) -> tuple[list, list]:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[: len(items) // 2], items[len(items) // 2:]


def advbench() -> list[str]:
    return [p.text for p in load_prompts(SHARED / "advbench" / "harmful_behaviors.csv", "goal")]


def xstest(label: str) -> list[str]:
    return [p.text for p in load_prompts(SHARED / "xstest" / "xstest_prompts.csv", where={"label": label})]


def self_instruct() -> list[str]:
    """Seed tasks as a user would send them: the instruction, then its first instance's input."""
    out = []
    for line in (SHARED / "self-instruct-seed" / "seed_tasks.jsonl").read_text().splitlines():
        r = json.loads(line)
        inp = (r.get("instances") or [{}])[0].get("input", "").strip()
        out.append(r["instruction"].strip() + (f"\n\n{inp}" if inp else ""))
    return out


def hh_pairs_file() -> Path:
    return SHARED / "hh-rlhf-dev" / "harmless_base_test_first400.jsonl"


def available() -> bool:
    return (SHARED / "advbench" / "harmful_behaviors.csv").is_file()
