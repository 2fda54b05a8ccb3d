#!/usr/bin/env bash
# Trains the playground's bundled model (hybrid, preset tiny) on the CPython standard library within a time budget,
# then writes it with f16 weights to public/models/default.safetensors (or $MODEL_OUT).
#   BIN=path/to/hnet-gpt DEVICE=wgpu BUDGET_S=150 scripts/train-default.sh
set -euo pipefail
BIN=${BIN:-hnet-gpt}
DATA=${DATA:-/usr/lib/python3.11}
DEVICE=${DEVICE:-cpu}
BUDGET_S=${BUDGET_S:-1800}
RUN=${RUN:-runs/default-hybrid-tiny}
MODEL_OUT=${MODEL_OUT:-public/models/default.safetensors}
BATCH=${BATCH:-16}
SEQ=${SEQ:-256}
tps=$(BIN="$BIN" DATA="$DATA" DEVICE="$DEVICE" BATCH="$BATCH" SEQ="$SEQ" "$(dirname "$0")/probe-throughput.sh" hybrid tiny 8)
steps=$(( BUDGET_S * 85 / 100 * tps / (BATCH * SEQ) ))
echo "probe: $tps tokens/s on $DEVICE -> $steps steps" >&2
"$BIN" train --arch hybrid --preset tiny --steps "$steps" --warmup $(( steps / 20 + 1 )) --lr 2e-3 \
  --eval-every $(( steps / 4 + 1 )) --batch-size "$BATCH" --seq-len "$SEQ" --data "$DATA" --device "$DEVICE" \
  --out "$RUN" --quiet
last=$(ls -d "$RUN"/checkpoints/step-* | sort | tail -1)
"$BIN" convert --checkpoint "$last/model.safetensors" --out "$MODEL_OUT" --half
