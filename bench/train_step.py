"""Seconds per training example on the embedded model: SFT and DPO, LoRA vs full fine-tuning,
and depth-routed vs unrouted training, all in one process so the ratios share the machine's mood.

Each configuration trains --steps optimizer steps (after one warm-up step that is not timed) on
the same synthetic data: sequences of about --tokens tokens, three principles (one per depth
third: shallow, middle, deep) in equal parts. "routed" trains each principle's batches on its
third of the blocks only; "unrouted" trains every block (same batches, same order). Both train the
same parameter set — the blocks; embeddings, final norm and LM head are frozen in both (see
docs/training.md) — and each row records the parameters the optimiser holds, so an unequal pair
would show. The routing target is routed/unrouted <= 1.15.

    .venv/bin/python bench/train_step.py [--steps 4] [--batch-size 2] [--tokens 256] [--only sft-lora,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _util import print_table, write_results  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from charter.train import DPOTrainConfig, SFTTrainConfig, TrainingRun  # noqa: E402

PRINCIPLES = ["genuine-helpfulness", "honesty", "avoid-serious-harm"]  # shallow, middle, deep in `default`
FILLER = (
    "I can't help with that part, but here is some general, safe context that may be useful instead. "
    "Safety matters because people can get hurt, and there are legitimate resources to consult. "
)


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []
        self._t = None
        self.optimised: int | None = None  # parameters (elements) the optimiser updates

    def on_train_begin(self, args, state, control, optimizer=None, model=None, **kw):
        if optimizer is not None:
            self.optimised = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
        else:
            self.optimised = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._t)


def _text(tokens: int, i: int) -> str:
    words = (FILLER * (tokens // 30 + 2)).split()
    return f"({i}) " + " ".join(words[: int(tokens * 0.75)])


def make_data(tmp: Path, n_per_principle: int, tokens: int) -> tuple[Path, Path]:
    sft, prefs = [], []
    for p in PRINCIPLES:
        for i in range(n_per_principle):
            prompt = f"Question {i} about {p}: how should I handle this situation?"
            sft.append(
                {
                    "messages": [
                        {"role": "user", "content": prompt},
                        {"role": "assistant", "content": _text(tokens, i)},
                    ],
                    "principles": [p],
                }
            )
            prefs.append(
                {
                    "prompt": [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": _text(tokens // 2, i)}],
                    "rejected": [{"role": "assistant", "content": "Sure! " + _text(tokens // 2, i + 1)}],
                    "p_chosen": 0.8,
                    "principle": p,
                }
            )
    a, b = tmp / "sft.jsonl", tmp / "prefs.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in sft))
    b.write_text("".join(json.dumps(r) + "\n" for r in prefs))
    return a, b


def measure(name: str, method: str, lora: bool, routing: bool, data: Path, tmp: Path, args) -> dict:
    cls = SFTTrainConfig if method == "sft" else DPOTrainConfig
    cfg = cls(
        data=str(data),
        out=str(tmp / name),
        model="embedded",
        lora=lora,
        routing=routing,
        batch_size=args.batch_size,
        max_length=args.tokens + 64,
        max_steps=args.steps + 1,
        save_steps=10_000,
        seed=0,
        overwrite=True,
    )
    timer = StepTimer()
    TrainingRun(cfg, callbacks=[timer]).run()
    steady = timer.times[1:]  # step 1 warms up allocators and kernels
    per_step = statistics.median(steady)
    return {
        "config": name,
        "method": method,
        "lora": lora,
        "routing": routing,
        "steps_timed": len(steady),
        "s_per_step": round(per_step, 3),
        "s_per_example": round(per_step / args.batch_size, 3),
        "optimised_params": timer.optimised,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--only", default="", help="comma-separated subset of sft-lora,sft-full,dpo-lora,dpo-full")
    args = ap.parse_args()
    wanted = [w for w in args.only.split(",") if w] or ["sft-lora", "sft-full", "dpo-lora", "dpo-full"]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        # Enough examples for steps+1 batches of each principle group.
        sft, prefs = make_data(tmp, n_per_principle=args.batch_size * (args.steps + 1), tokens=args.tokens)
        for combo in wanted:
            method, kind = combo.split("-")
            data = sft if method == "sft" else prefs
            # Alternate the order of the pair so neither always runs on a warmer machine.
            order = [False, True] if len(rows) % 4 == 0 else [True, False]
            pair = {}
            for routing in order:
                name = f"{combo}-{'routed' if routing else 'unrouted'}"
                print(f"== {name}", flush=True)
                pair[routing] = measure(name, method, kind == "lora", routing, data, tmp, args)
            pair[True]["routed_vs_unrouted"] = round(pair[True]["s_per_step"] / pair[False]["s_per_step"], 3)
            if pair[True]["optimised_params"] != pair[False]["optimised_params"]:
                raise SystemExit(
                    f"{combo}: routed and unrouted runs optimise different parameter sets "
                    f"({pair[True]['optimised_params']} vs {pair[False]['optimised_params']}): unequal comparison"
                )
            rows += [pair[False], pair[True]]
    for method in ("sft", "dpo"):
        lo = {r["routing"]: r for r in rows if r["method"] == method and r["lora"]}
        fu = {r["routing"]: r for r in rows if r["method"] == method and not r["lora"]}
        if False in lo and False in fu:
            lo[False]["lora_vs_full"] = round(lo[False]["s_per_step"] / fu[False]["s_per_step"], 3)
    print_table(
        rows, ["config", "s_per_step", "s_per_example", "routed_vs_unrouted", "lora_vs_full", "optimised_params"]
    )
    path = write_results(
        "train_step",
        {
            "model": "embedded (SmolLM2-135M-Instruct, fp32, CPU)",
            "batch_size": args.batch_size,
            "tokens_per_sequence": args.tokens,
            "steps_timed_per_config": args.steps,
            "target_routed_vs_unrouted": 1.15,
            "principles": PRINCIPLES,
            "rows": rows,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
