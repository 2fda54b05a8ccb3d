#!/usr/bin/env bash
# Prints the median training tokens/s of ARCH at PRESET on this device (a few steps, medians skip warm-up), so
# the GPU scripts can size their step counts to a time budget.
#   scripts/experiments/probe-throughput.sh ARCH PRESET STEPS   (environment: BIN, DATA, DEVICE, BATCH, SEQ as the callers')
set -euo pipefail
arch=$1 preset=$2 steps=$3
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
"$BIN" train --arch "$arch" --preset "$preset" --steps "$steps" --warmup 1 --eval-every 100 --eval-batches 1 \
  --batch-size "$BATCH" --seq-len "$SEQ" --data "$DATA" --device "$DEVICE" --out "$probe/run" --quiet
python3 - "$probe/run/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"train"' in l]
print(int(statistics.median(r["tokens_per_s"] for r in rows[2:])))
PY
