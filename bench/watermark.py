"""Green-list watermark (Kirchenbauer et al.; transformers' WatermarkingConfig) on the embedded
model, with Charter's keyed green lists (HMAC-SHA256 of a 256-bit secret per context token), in one run:
detection rate at z >= 4 after 50, 100 and 200 generated tokens, the false-
positive rate on unwatermarked generations of the same prompts, and the perplexity of watermarked
vs plain generations scored by the same model (the quality cost of the mark). Sampling at
temperature 0.7; greenlist ratio 0.25; bias 2.0 (the profile default) and 4.0.

    .venv/bin/python bench/watermark.py [--prompts 16] [--tokens 200]
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from _util import print_table, write_results  # noqa: E402

from charter.backends.spec import load_backend  # noqa: E402
from charter.core.io import load_prompts  # noqa: E402
from charter.evals.run import DEFAULT_PROMPTS  # noqa: E402
from charter.gateway.watermark import detect, detect_ids, generation_watermark  # noqa: E402

KEY = secrets.token_bytes(32)  # a fresh 256-bit secret per run, as a gateway draws its key file


@torch.inference_mode()
def generate(backend, prompts: list[str], tokens: int, watermark, seed: int) -> list[list[int]]:
    tok = backend.tokenizer
    enc = [backend._encode(backend.render([{"role": "user", "content": p}])) for p in prompts]
    batch = tok.pad({"input_ids": enc}, padding=True, return_tensors="pt")
    torch.manual_seed(seed)
    out = backend.model.generate(
        **batch,
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        do_sample=True,
        temperature=0.7,
        top_p=1.0,
        watermarking_config=watermark,
        pad_token_id=tok.pad_token_id,
    )
    return [row.tolist() for row in out[:, batch["input_ids"].shape[1] :]]


@torch.inference_mode()
def perplexity(backend, prompts: list[str], gens: list[list[int]]) -> float:
    nll, n = 0.0, 0
    for p, g in zip(prompts, gens):
        ctx = backend._encode(backend.render([{"role": "user", "content": p}]))
        ids = torch.tensor([ctx + g])
        logits = backend.model(input_ids=ids).logits[0, len(ctx) - 1 : -1].float()
        logp = torch.log_softmax(logits, -1).gather(1, torch.tensor(g)[:, None])[:, 0]
        nll -= float(logp.sum())
        n += len(g)
    return math.exp(nll / n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=200)
    args = ap.parse_args()
    backend = load_backend("embedded:hf")
    prompts = [p.text for p in load_prompts(DEFAULT_PROMPTS["over-refusal"])][: args.prompts]
    lengths = [n for n in (50, 100, 200) if n <= args.tokens]
    plain = generate(backend, prompts, args.tokens, None, seed=1)
    rows, series = [], {}
    ppl_plain = perplexity(backend, prompts, plain)
    # The z-test uses only the green-list ratio and key, not the bias: the plain texts score once.
    plain_z = {n: [detect_ids(g[:n], "embedded", hashing_key=KEY)["z_score"] for g in plain] for n in lengths}
    for bias in (2.0, 4.0):
        wm = generation_watermark({"method": "kirchenbauer", "greenlist_ratio": 0.25, "bias": bias, "hashing_key": KEY})
        marked = generate(backend, prompts, args.tokens, wm, seed=1)
        ppl = perplexity(backend, prompts, marked)
        rates = []
        for n in lengths:
            zs = [detect_ids(g[:n], "embedded", hashing_key=KEY, bias=bias)["z_score"] for g in marked]
            fz = plain_z[n]
            tpr, fpr = sum(z >= 4 for z in zs) / len(zs), sum(z >= 4 for z in fz) / len(fz)
            rates.append(tpr)
            rows.append(
                {
                    "bias": bias,
                    "tokens": n,
                    "detection_rate": round(tpr, 3),
                    "false_positive_rate": round(fpr, 3),
                    "median_z_marked": round(sorted(zs)[len(zs) // 2], 2),
                    "median_z_plain": round(sorted(fz)[len(fz) // 2], 2),
                    "ppl_marked": round(ppl, 2),
                    "ppl_plain": round(ppl_plain, 2),
                    "ppl_ratio": round(ppl / ppl_plain, 3),
                }
            )
        # The product path: decoded text, re-tokenised by `charter watermark detect`.
        text_hits = sum(
            detect(backend.tokenizer.decode(g, skip_special_tokens=True), "embedded", hashing_key=KEY, bias=bias)[
                "watermarked"
            ]
            for g in marked
        )
        rows[-1]["text_path_detection_rate"] = round(text_hits / len(marked), 3)
        series[bias] = rates
    print_table(
        rows,
        [
            "bias",
            "tokens",
            "detection_rate",
            "false_positive_rate",
            "median_z_marked",
            "median_z_plain",
            "ppl_marked",
            "ppl_plain",
            "ppl_ratio",
        ],
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for bias, rates in series.items():
        ax.plot(lengths, rates, marker="o", label=f"watermarked, bias {bias:g}")
    ax.plot(
        lengths,
        [r["false_positive_rate"] for r in rows if r["bias"] == 2.0],
        marker="x",
        ls="--",
        label="plain (false positives)",
    )
    ax.set_xlabel("generated tokens")
    ax.set_ylabel("share with z >= 4")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Green-list watermark on SmolLM2-135M")
    ax.legend()
    fig.tight_layout()
    out = write_results(
        "watermark",
        {
            "prompts": len(prompts),
            "tokens": args.tokens,
            "temperature": 0.7,
            "greenlist_ratio": 0.25,
            "seeding": "HMAC-SHA256(256-bit secret, previous token)",
            "rows": rows,
        },
    )
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
