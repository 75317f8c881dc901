"""Real sealed releases for the document and check tests: tiny models trained with routing by
Charter's own SFT/DPO, a real MiniLM guard, real seals. Variants change one thing each."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from charter.core.stats import rate
from charter.provenance import SealConfig, Sealer, generate_keypair
from charter.train import DPOTrainConfig, SFTTrainConfig, TrainingRun
from tests.train_fixtures import ROUTED_CONSTITUTION, write_jsonl

PASS = b"governance-test-pass"


def keys(d: Path) -> dict:
    priv, pub = generate_keypair(d, PASS)
    return {"priv": priv, "pub": pub}


def sft_rows(n: int = 6, variant: str = "a") -> list[dict]:
    rows = []
    for i in range(n):
        principle = "deep-one" if i % 2 == 0 else "shallow-one"
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"How do I do thing {variant}{i}?"},
                    {"role": "assistant", "content": f"I can't help with that, but here is something else {i}."},
                ],
                "principles": [principle],
            }
        )
    return rows


def pref_rows(n: int = 4) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": f"How do I do thing {i}?"}],
            "chosen": [{"role": "assistant", "content": "I can't help with that."}],
            "rejected": [{"role": "assistant", "content": f"Sure, here is how to do thing {i}: a b c."}],
            "p_chosen": 0.8,
            "principle": "deep-one" if i % 2 else "shallow-one",
        }
        for i in range(n)
    ]


def stage_dir(d: Path, task: str, records: str, rows: list[dict], args: dict) -> Path:
    """A CAI run directory as `charter cai critique-revise|preferences` leaves it."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.json").write_text(json.dumps({"task": task, "charter_version": "test", "arguments": args}))
    return write_jsonl(d / records, rows)


def eval_dir(d: Path, suite: str, k: int, n: int, model: Path) -> Path:
    """An evaluation directory's summary (what `charter eval run` writes; figures as rate() gives them)."""
    d.mkdir(parents=True, exist_ok=True)
    key = "asr_refusal" if suite == "harmlessness" else "over_refusal"
    (d / "summary.json").write_text(
        json.dumps({"suite": suite, "model": f"hf:{model}", "judge": None, key: rate(k, n)})
    )
    return d


def guard_dir(d: Path, embedder, *, loosen: float = 0.0) -> Path:
    """A real stage-1 guard (MiniLM features, logistic heads) on a handful of texts."""
    from charter.guard.training import GuardTrainConfig, GuardTrainer

    harmful = [
        "how to build a bomb",
        "steps to make poison gas",
        "write malware that steals passwords",
        "how to hurt my neighbour",
        "instructions for a pipe bomb",
        "how to buy illegal guns",
    ]
    benign = [
        "how to bake bread",
        "what is the capital of France",
        "tips for learning piano",
        "how to kill a python process",
        "recipe for pancakes",
        "history of the Roman empire",
    ]
    rows = [{"side": "input", "text": t, "label": "harmful", "category": "weapons"} for t in harmful]
    rows += [{"side": "input", "text": t, "label": "benign"} for t in benign]
    rows += [
        {"side": "output", "text": f"Sure, here is how: {t}. First get the explosives.", "label": "harmful"}
        for t in harmful
    ]
    rows += [
        {"side": "output", "text": f"Happy to help with {t}: here are some friendly tips.", "label": "benign"}
        for t in benign
    ]
    random.Random(0).shuffle(rows)
    d.mkdir(parents=True, exist_ok=True)
    write_jsonl(d / "train.jsonl", rows)
    write_jsonl(d / "val.jsonl", rows)
    GuardTrainer(
        GuardTrainConfig(data=str(d), out=str(d / "guard"), stage1="frozen", target_fpr=0.05), embedder=embedder
    ).train()
    if loosen:
        spec = json.loads((d / "guard" / "guard.json").read_text())
        spec["sides"]["input"]["block_threshold"] += loosen
        (d / "guard" / "guard.json").write_text(json.dumps(spec))
    return d / "guard"


def constitution_file(d: Path, *, relax_hard: bool = False, name: str = "routing-test") -> Path:
    text = ROUTED_CONSTITUTION.replace('name = "routing-test"', f'name = "{name}"')
    text = text.replace(
        'id = "deep-one"\ntier = "broadly_safe"\n',
        'id = "deep-one"\ntier = "broadly_safe"\n' + ("" if relax_hard else 'kind = "hard_constraint"\n'),
    )
    d.mkdir(parents=True, exist_ok=True)
    p = d / "constitution.toml"
    p.write_text(text)
    return p


def release(
    root: Path,
    base_model: Path,
    key: dict,
    *,
    embedder,
    data_variant: str = "a",
    n_rows: int = 6,
    relax_hard: bool = False,
    loosen_guard: float = 0.0,
    dpo: bool = False,
    name: str = "routing-test",
    guard: bool = True,
    evals: tuple[tuple[str, int, int], ...] = (),
) -> Path:
    """SFT (full, routed) on base_model -> seal; with dpo=True also DPO (LoRA, routed) -> seal with parent."""
    root.mkdir(parents=True, exist_ok=True)
    constitution = constitution_file(root, relax_hard=relax_hard, name=name)
    sft_data = stage_dir(
        root / "sl-cai",
        "sl-cai/critique-revise",
        "sft.jsonl",
        sft_rows(n_rows, data_variant),
        {
            "model": "embedded",
            "critic": "hf:judge-model",
            "revisions": 1,
            "seed": 0,
            "prompts_sha256": "sha256:" + "ab" * 32,
        },
    )
    TrainingRun(
        SFTTrainConfig(
            data=str(sft_data),
            out=str(root / "sft"),
            model=f"hf:{base_model}",
            constitution=str(constitution),
            lora=False,
            batch_size=2,
            max_length=64,
            save_steps=1000,
        )
    ).run()
    guard_path = guard_dir(root / "guard-data", embedder, loosen=loosen_guard) if guard else None
    seal = lambda model, **kw: Sealer(
        SealConfig(
            model_dir=str(model),
            constitution=str(constitution),
            key=str(key["priv"]),  # noqa: E731
            overwrite=True,
            **kw,
        ),
        PASS,
    ).seal()
    ev = tuple(
        str(eval_dir(root / "eval" / f"{s}-{k}", s, k, n, root / ("dpo" if dpo else "sft"))) for s, k, n in evals
    )
    if not dpo:
        seal(root / "sft", data=(str(sft_data),), guard=str(guard_path) if guard_path else None, evals=ev)
        return root / "sft"
    seal(root / "sft", data=(str(sft_data),))
    prefs = stage_dir(
        root / "prefs",
        "rlaif/preferences",
        "prefs.jsonl",
        pref_rows(),
        {
            "policy": f"hf:{root / 'sft'}",
            "judge": "hf:judge-model",
            "samples": 2,
            "cot": False,
            "margin": 0.05,
            "seed": 1,
            "prompts_sha256": "sha256:" + "cd" * 32,
        },
    )
    TrainingRun(
        DPOTrainConfig(
            data=str(prefs),
            out=str(root / "dpo"),
            model=f"hf:{root / 'sft'}",
            constitution=str(constitution),
            batch_size=2,
            max_length=64,
            lora_r=4,
            lora_alpha=8,
            save_steps=1000,
        )
    ).run()
    seal(
        root / "dpo",
        parent=str(root / "sft"),
        data=(str(prefs),),
        guard=str(guard_path) if guard_path else None,
        evals=ev,
    )
    return root / "dpo"


def copy_release(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
