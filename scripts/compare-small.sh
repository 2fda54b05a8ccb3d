#!/usr/bin/env bash
# The three-way comparison at preset `small` on the CPython standard library, with the number of steps sized to a
# time budget by a short probe of this device's training speed (the slowest architecture, hnet).
#   BIN=path/to/hnet-gpt DEVICE=wgpu BUDGET_S=420 scripts/compare-small.sh
# Environment: BIN (default: hnet-gpt on PATH), DATA (default: /usr/lib/python3.11), DEVICE (cpu|wgpu),
# BUDGET_S (seconds for the whole comparison), OUT_DIR (default: runs/compare-small), SEEDS (3), BATCH (16), SEQ (256).
set -euo pipefail
BIN=${BIN:-hnet-gpt}
DATA=${DATA:-/usr/lib/python3.11}
DEVICE=${DEVICE:-cpu}
BUDGET_S=${BUDGET_S:-3600}
OUT_DIR=${OUT_DIR:-runs/compare-small}
SEEDS=${SEEDS:-3}
BATCH=${BATCH:-16}
SEQ=${SEQ:-256}
tps=$(BIN="$BIN" DATA="$DATA" DEVICE="$DEVICE" BATCH="$BATCH" SEQ="$SEQ" "$(dirname "$0")/experiments/probe-throughput.sh" hnet small 6)
runs=$(( 3 * SEEDS ))
# 65% of the budget trains; the rest loads data, evaluates and writes the report.
steps=$(( BUDGET_S * 65 / 100 / runs * tps / (BATCH * SEQ) ))
[ "$steps" -ge 20 ] || { echo "too slow for this budget: $tps tokens/s gives $steps steps" >&2; exit 1; }
echo "probe: $tps tokens/s on $DEVICE -> $steps steps of $BATCH x $SEQ tokens per run, $runs runs" >&2
"$BIN" compare --preset small --seeds "$SEEDS" --steps "$steps" --batch-size "$BATCH" --seq-len "$SEQ" \
  --warmup $(( steps / 10 )) --eval-every $(( steps / 5 > 0 ? steps / 5 : 1 )) --lr 1e-3 \
  --eval-tokens 10000 --headers 10 --data "$DATA" --device "$DEVICE" --out "$OUT_DIR"
