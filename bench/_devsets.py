"""The development sets in ../shared/data, loaded and split into seeded halves the same way by
every guard benchmark (train on one half, test on the other)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from charter.core.io import load_prompts

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def halves(items: list, seed: int = 0) -> tuple[list, list]:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[: len(items) // 2], items[len(items) // 2 :]


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


WRITTEN_PAIRS = Path(__file__).resolve().parent / "data" / "written_pairs.jsonl"


def _hh_context(line: int, turns: int = 5) -> str:
    """The conversation before the final reply of HH-RLHF slice line ``line`` (1-based), its last
    ``turns`` turns (what the writers of bench/data/written_pairs.jsonl were shown)."""
    record = json.loads(hh_pairs_file().read_text().splitlines()[line - 1])
    head = record["chosen"].rpartition("\n\nAssistant:")[0].strip()
    return "\n\n".join(head.split("\n\n")[-turns:]).strip()


def written_pairs() -> list[dict]:
    """The graded reply pairs written for Charter (bench/data/written_pairs.jsonl) as guard training
    pairs. The file holds only the written replies and a reference to each conversation in
    ../shared/data (an HH-RLHF train-half line, an AdvBench or XSTest-unsafe train-half request),
    so no dev-set text is committed; the conversation is read back from there."""
    adv, xs = advbench(), xstest("unsafe")
    out = []
    for n, line in enumerate(WRITTEN_PAIRS.read_text().splitlines(), 1):
        r = json.loads(line)
        ref = r["context"]
        if ref["source"] == "hh-rlhf-dev":
            context = _hh_context(ref["line"])
        elif ref["source"] == "advbench":
            context = "Human: " + adv[ref["index"]]
        elif ref["source"] == "xstest-unsafe":
            context = "Human: " + xs[ref["index"]]
        else:
            raise ValueError(f"{WRITTEN_PAIRS}:{n}: unknown context source {ref['source']!r}")
        prompt = context.rpartition("Human:")[2].strip()
        out.append(
            {
                "prompt": prompt,
                "context": context,
                "chosen": r["chosen"],
                "rejected": r["rejected"],
                "source": f"written_pairs.jsonl:{n}",
                "rule": "written-pair",
                "grade": r["grade"],
            }
        )
    return out
