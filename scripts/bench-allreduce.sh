#!/usr/bin/env bash
# The all-reduce between nodes, measured: `hnet-gpt coordinator` and two `hnet-gpt train --nodes 2` processes on
# this machine (one CPU replica each), gpt2 at a preset, a few steps; beside it one process with `--devices 2` (the
# same replicas averaged inside one process). Reports the seconds each step spent in the gradients' all-reduce (the
# metrics' `allreduce_s`: from handing over the gradients until their average is back; the replicas have already
# met in the loss's all-reduce just before, so waiting for the slower one is not in it), the bytes of gradients each step averages, and, on paper, the wire time of the same ring all-reduce
# between two machines on a 10 Gbit/s link. Writes docs/results/cluster/allreduce.{md,log}.
#
#   scripts/bench-allreduce.sh                   # gpt2 small, batch 4 × 128, 8 steps (about 5 minutes on 2 cores)
#
# Options: --preset P, --batch-size N, --seq-len N, --steps N, --port P (the coordinator's; the nodes take P+1, P+2).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
preset=small batch=4 seq=128 steps=8 port=29500
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --seq-len) seq=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command="scripts/bench-allreduce.sh --preset $preset --batch-size $batch --seq-len $seq --steps $steps"
cargo build --release --quiet -p hnet-gpt
bin="$CARGO_TARGET_DIR/release/hnet-gpt"
out=docs/results/cluster
work=$(mktemp -d)
coordinator=""
trap '[ -n "$coordinator" ] && kill "$coordinator" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$out"
log="$out/allreduce.log"
settings=(--arch gpt2 --preset "$preset" --batch-size "$batch" --seq-len "$seq" --steps "$steps" --eval-every 1000000
          --eval-batches 1 --warmup 1 --checkpoint-every 1000000 --seed 1 --quiet)
{
  echo "# $command"
  echo "# $(date -u +%Y-%m-%dT%H:%MZ) · $(nproc) cores · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "## one process, --devices 2"
  "$bin" train "${settings[@]}" --devices 2 --out "$work/devices" 2>&1
  echo "## two nodes"
  "$bin" coordinator --port "$port" 2>&1 &
  coordinator=$!
  sleep 1
  nodes=(--nodes 2 --coordinator "127.0.0.1:$port")
  "$bin" train "${settings[@]}" "${nodes[@]}" --node-rank 1 --node-address "127.0.0.1:$((port + 2))" --out "$work/rank1" 2>&1 &
  rank1=$!
  "$bin" train "${settings[@]}" "${nodes[@]}" --node-rank 0 --node-address "127.0.0.1:$((port + 1))" --out "$work/nodes" 2>&1
  wait "$rank1"
} > "$log"
for run in devices nodes; do
  echo "## $run: metrics.jsonl (step, allreduce_s, tokens_per_s)" >> "$log"
  python3 -c "import json,sys; [print(r['step'], r['allreduce_s'], r['tokens_per_s']) for r in map(json.loads, open(sys.argv[1])) if r.get('kind') == 'train']" "$work/$run/metrics.jsonl" >> "$log"
done
sed -i "s#$work#RUN#g" "$log"
params=$(python3 -c "import json; print(json.load(open('$work/nodes/summary.json'))['parameters'])")
python3 - "$work" "$params" "$command" > "$out/allreduce.md" <<'EOF'
import json, statistics, sys
work, params, command = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def steps(run):
    rows = [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl")]
    # The first step also warms up (allocations, first connections): left out of the medians.
    return [r for r in rows if r.get("kind") == "train" and "allreduce_s" in r][1:]

def median(run, key):
    return statistics.median(r[key] for r in steps(run))

gradient_bytes = 4 * params
link = 10e9 / 8  # bytes per second on a 10 Gbit/s link
# A ring all-reduce between N nodes sends 2 (N - 1) / N of the data from each node: the whole of it for N = 2.
wire = gradient_bytes * 2 * (2 - 1) / 2 / link
print(f"# The all-reduce between two nodes\n\nMade by `{command}` (log: [allreduce.log](allreduce.log)); "
      "both replicas on this machine, one CPU device each.\n")
print("| | one process, `--devices 2` | two processes, `--nodes 2` |\n|---|---|---|")
print(f"| gradients averaged per step | {gradient_bytes / 1e6:.1f} MB ({params:,} f32 parameters) | same |")
print(f"| all-reduce per step (median, step 1 left out) | {median('devices', 'allreduce_s'):.3f} s | {median('nodes', 'allreduce_s'):.3f} s |")
print(f"| training tokens/s (median) | {median('devices', 'tokens_per_s'):.0f} | {median('nodes', 'tokens_per_s'):.0f} |")
print(f"\nBetween the two processes each node sends {gradient_bytes / 1e6:.1f} MB per step (a ring all-reduce over two "
      "nodes: half the gradients out in the reduce-scatter, half in the all-gather) through burn's WebSocket data "
      "service; the seconds include serialising and deserialising them, on cores the two processes share here. On paper, two machines on a 10 Gbit/s link move the same bytes in "
      f"{wire:.3f} s per step at line rate — a floor: the serialisation measured here comes on top.")
EOF
cat "$out/allreduce.md"
