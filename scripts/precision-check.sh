#!/usr/bin/env bash
# Mixed precision against f32 at equal steps: gpt2 `small` trained three times on the CPython standard library with
# the same settings — f32 (seed 0), f32 (seed 1: the noise between runs that differ only in their seed) and
# `--precision bf16` (seed 0) — and the loss curves side by side. Needs a CPU with AMX (bf16 refuses to run
# without it). Writes docs/results/bench/precision.{md,json,log}; about 3 minutes on 2 cores.
#
#   scripts/precision-check.sh [--steps N] [--data DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
steps=60 data=""
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
# The README's corpus; else this Python's standard library.
[ -n "$data" ] || { [ -d /usr/lib/python3.11 ] && data=/usr/lib/python3.11; } || data=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
out=docs/results/bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
command="scripts/precision-check.sh --steps $steps"
exec > >(sed -u -e "s|$work|\$WORK|g" -e "s|$data|\$STDLIB|g" | tee "$out/precision.log") 2>&1
echo "# $command  ($(date -u +%Y-%m-%dT%H:%MZ)); data: the CPython standard library (\$STDLIB)"
cargo build --release --quiet -p hnet-gpt
bin="$CARGO_TARGET_DIR/release/hnet-gpt"
for run in f32:0 f32:1 bf16:0; do
  precision=${run%:*} seed=${run#*:}
  echo "==> $precision, seed $seed"
  "$bin" train --arch gpt2 --preset small --data "$data" --steps "$steps" --batch-size 8 --seq-len 128 \
    --eval-every $((steps / 2)) --seed "$seed" --precision "$precision" --quiet --out "$work/$precision-$seed"
done
python3 - "$work" "$out" "$command" "$steps" <<'EOF'
import json, os, sys
work, out, command, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
runs = {}
for name in ["f32-0", "f32-1", "bf16-0"]:
    rows = [json.loads(l) for l in open(os.path.join(work, name, "metrics.jsonl"))]
    summary = json.load(open(os.path.join(work, name, "summary.json")))
    runs[name] = {"train": {r["step"]: r["loss"] for r in rows if r["kind"] == "train"},
                  "valid": {r["step"]: r["loss"] for r in rows if r["kind"] == "valid"},
                  "tokens_per_s": summary["tokens_per_s"]}
every = max(1, steps // 6)
def window(name, end):
    """Mean training loss over the `every` steps ending at `end` (single steps are noisy)."""
    xs = [runs[name]["train"][s] for s in range(end - every + 1, end + 1) if s in runs[name]["train"]]
    return sum(xs) / len(xs)
lines = ["# Mixed precision against f32 at equal steps", "",
         f"`{command}`: gpt2 `small`, batch 8 × 128, AdamW, {steps} steps on the CPython standard library, three runs "
         "with the same settings: f32 with seed 0, f32 with seed 1 (how far two f32 runs that differ only in their seed "
         "drift apart: the noise) and `--precision bf16` with seed 0 (the head's three products over the vocabulary and "
         "every linear layer's products on bf16 operands with f32 sums, on AMX). Training loss: mean over the steps of each window.", "",
         "| loss | f32, seed 0 | f32, seed 1 | bf16, seed 0 | bf16 − f32 (seed 0) | f32 seed 1 − seed 0 |", "|---|---:|---:|---:|---:|---:|"]
for end in range(every, steps + 1, every):
    a, b, c = window("f32-0", end), window("f32-1", end), window("bf16-0", end)
    lines.append(f"| train, steps {end - every + 1}–{end} | {a:.4f} | {b:.4f} | {c:.4f} | {c - a:+.4f} | {b - a:+.4f} |")
for step in sorted(runs["f32-0"]["valid"]):
    a, b, c = (runs[n]["valid"].get(step) for n in ["f32-0", "f32-1", "bf16-0"])
    lines.append(f"| validation, step {step} | {a:.4f} | {b:.4f} | {c:.4f} | {c - a:+.4f} | {b - a:+.4f} |")
t = {n: runs[n]["tokens_per_s"] for n in runs}
lines += ["", f"Training tokens/s over the whole run (data loading and validation included): f32 {t['f32-0']:,.0f} and "
          f"{t['f32-1']:,.0f}, bf16 {t['bf16-0']:,.0f} ({t['bf16-0'] / t['f32-0']:.2f}× seed 0's f32). The console output: "
          "`precision.log`; every step: `precision.json`.", ""]
json.dump({"command": command, "runs": runs}, open(os.path.join(out, "precision.json"), "w"), indent=1)
open(os.path.join(out, "precision.md"), "w").write("\n".join(lines))
print("\n".join(lines))
EOF
