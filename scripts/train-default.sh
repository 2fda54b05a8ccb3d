#!/usr/bin/env bash
# The bundled model's recipe, sized for one 10-minute GPU window (issue: a bundled model worth trying):
#  1. a prepared corpus of real Python: the site-packages of this machine's Python (every installed distribution with
#     a permissive licence; split by package) — and the CPython standard library prepared apart, as a second,
#     never-trained-on evaluation set;
#  2. a short learning-rate sweep of gpt2 (SWEEP_S seconds per rate, lowest validation loss wins);
#  3. gpt2 and the hybrid trained with the same token budget (steps from the measured throughput, warmup-stable-
#     decay), each converted to f16 (≤ 48 MB for the browser);
#  4. both evaluated (held-out packages, the stdlib, the seed's five prompts, header syntax, HumanEval when a sandbox
#     is available, sample completions, xz/zstd floors); the better one (lower bits per byte on the held-out
#     packages) becomes public/models/default.safetensors, both are listed in public/models/models.json, and
#     docs/results/default-model.md is written by scripts/default_model_report.py.
#
#   BIN=target/dist/hnet-gpt DEVICE=cuda scripts/train-default.sh            # the GPU window
#   BIN=... DEVICE=cpu PRESET=tiny BUDGET_S=16 SWEEP_S=3 LRS="2e-3 4e-3" BATCH=4 SEQ=64 HUMANEVAL=0 EVAL_TOKENS=2000 \
#     OUT=/tmp/recipe REPORT=/tmp/recipe/report.md MODELS=/tmp/recipe/models scripts/train-default.sh   # a CPU check
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-hnet-gpt}
DEVICE=${DEVICE:-cuda}
PRESET=${PRESET:-small}
BUDGET_S=${BUDGET_S:-360}       # training seconds for both architectures together
SWEEP_S=${SWEEP_S:-20}          # seconds per learning rate of the sweep
LRS=${LRS:-"1e-3 2e-3 4e-3"}
BATCH=${BATCH:-32}
SEQ=${SEQ:-512}
OUT=${OUT:-runs/default}
SITE=${SITE:-$(python3 -c 'import site; print(site.getsitepackages()[0])')}
STDLIB=${STDLIB:-$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')}
HUMANEVAL=${HUMANEVAL:-164}
EVAL_TOKENS=${EVAL_TOKENS:-200000}
REPORT=${REPORT:-docs/results/default-model.md}
MODELS=${MODELS:-public/models}
mkdir -p "$OUT"
log="$OUT/recipe.log"
exec > >(tee -a "$log") 2>&1
echo "# $(date -u +%FT%TZ) BIN=$BIN DEVICE=$DEVICE PRESET=$PRESET BUDGET_S=$BUDGET_S SWEEP_S=$SWEEP_S BATCH=$BATCH SEQ=$SEQ"

echo "==> 1. corpora"
[ -d "$OUT/corpus" ] || "$BIN" data prepare --data "$SITE" --out "$OUT/corpus" --quiet
[ -d "$OUT/stdlib" ] || "$BIN" data prepare --data "$STDLIB" --out "$OUT/stdlib" --valid-fraction 0 --min-valid-bytes 0 --quiet

tokens_per_s() { # ARCH LR: median tokens/s of a few steps on this device
  BIN="$BIN" DATA="$OUT/corpus" DEVICE="$DEVICE" BATCH="$BATCH" SEQ="$SEQ" scripts/probe-throughput.sh "$1" "$PRESET" 8
}
train() { # ARCH LR STEPS RUN
  "$BIN" train --arch "$1" --preset "$PRESET" --lr "$2" --steps "$3" --warmup $(( $3 / 20 + 1 )) --schedule wsd \
    --eval-every $(( $3 / 4 + 1 )) --eval-batches 8 --batch-size "$BATCH" --seq-len "$SEQ" --data "$OUT/corpus" \
    --device "$DEVICE" --out "$4" --quiet
}
best_valid() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]+'/summary.json'))['best_valid_loss'])" "$1"; }

echo "==> 2. learning-rate sweep (gpt2, $SWEEP_S s each)"
tps=$(tokens_per_s gpt2)
sweep_steps=$(( SWEEP_S * tps / (BATCH * SEQ) + 1 ))
echo "gpt2: $tps tokens/s on $DEVICE -> $sweep_steps steps per rate"
best_lr="" best_loss=""
for lr in $LRS; do
  [ -d "$OUT/sweep-$lr" ] || train gpt2 "$lr" "$sweep_steps" "$OUT/sweep-$lr"
  loss=$(best_valid "$OUT/sweep-$lr")
  echo "lr $lr: best validation loss $loss"
  if [ -z "$best_loss" ] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$loss" "$best_loss"; then
    best_lr=$lr best_loss=$loss
  fi
done
echo "chosen learning rate: $best_lr"

echo "==> 3. gpt2 and hybrid, the same token budget"
tps_h=$(tokens_per_s hybrid)
# Equal tokens: both get the steps the slower one can take in half the budget.
slow=$(( tps < tps_h ? tps : tps_h ))
steps=$(( BUDGET_S / 2 * slow / (BATCH * SEQ) + 1 ))
echo "hybrid: $tps_h tokens/s -> $steps steps each ($(( steps * BATCH * SEQ )) tokens)"
for arch in gpt2 hybrid; do
  [ -f "$OUT/$arch/summary.json" ] || train "$arch" "$best_lr" "$steps" "$OUT/$arch"
  "$BIN" convert --checkpoint "$OUT/$arch/checkpoints/best/model.safetensors" --out "$OUT/$arch.safetensors" --half
done

echo "==> 4. evaluation"
sandbox=()
if [ "$HUMANEVAL" -eq 0 ]; then
  echo "note: HUMANEVAL=0: HumanEval is left out of this report"
elif "$BIN" humaneval --canonical --problems 1 > /dev/null 2>&1; then
  sandbox=(--humaneval "$HUMANEVAL" --samples 10)
else
  echo "note: no working sandbox here (bubblewrap, user namespaces): HumanEval is left out of this report"
fi
prompts=("def fibonacci(n):" "def is_prime(n):" "def reverse_string(s):" "class Stack:" "import os\n\ndef list_files(path):"
  "def quicksort(arr):" "def read_json(path):" "def factorial(n):" "for i in range(10):" "def binary_search(items, target):"
  "def merge_dicts(a, b):" "if __name__ == \"__main__\":")
for arch in gpt2 hybrid; do
  ckpt="$OUT/$arch.safetensors"
  "$BIN" eval --checkpoint "$ckpt" --device "$DEVICE" --data "$OUT/corpus" --max-tokens "$EVAL_TOKENS" --headers 50 "${sandbox[@]}" --json > "$OUT/$arch-eval.json"
  "$BIN" eval --checkpoint "$ckpt" --device "$DEVICE" --data "$OUT/stdlib" --all --max-tokens "$EVAL_TOKENS" --headers 50 --json > "$OUT/$arch-stdlib.json"
  : > "$OUT/$arch-samples.jsonl"
  for p in "${prompts[@]}"; do
    prompt=$(printf '%b' "$p")
    for mode in greedy sampled; do
      t=0.0; [ $mode = sampled ] && t=0.8
      text=$("$BIN" generate --checkpoint "$ckpt" --device "$DEVICE" --prompt "$prompt" --max-new-tokens 96 --temperature $t --stop $'\n\n\n')
      python3 -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "mode": sys.argv[2], "completion": sys.argv[3]}))' "$prompt" "$mode" "$text" >> "$OUT/$arch-samples.jsonl"
    done
  done
done
python3 scripts/default_model_report.py --out "$OUT" --recipe "$log" --report "$REPORT" --models "$MODELS"
