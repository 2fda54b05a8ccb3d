#!/usr/bin/env bash
# The benchmark: hnet-gpt beside PyTorch (Hugging Face GPT2LMHeadModel) on this machine, in one run — training
# tokens/s, step time and MFU for gpt2 (and hnet-gpt's hybrid and hnet at the same shape), greedy generation from the
# same weights with the same prompt, time to first token, matmul peak. Writes docs/results/bench/NAME.{json,md,log}.
#
#   scripts/bench.sh                      # CPU, preset small, batch 8 × 128, 5 rounds (about 15 minutes on 2 cores)
#   scripts/bench.sh --device cuda        # on a GPU machine where PyTorch is present (bf16 autocast for PyTorch)
#
# Options: --device cpu|wgpu|cuda, --preset P, --batch-size N, --seq-len N, --steps N, --rounds N, --name NAME,
# --features F. Every measurement is repeated in --rounds interleaved rounds (hnet-gpt gpt2, PyTorch, hybrid, hnet;
# default 5 on the CPU, 1 elsewhere) and the report takes each one's median: on a shared machine the load changes
# from minute to minute, and interleaving exposes both tools to the same periods. On a CPU with AMX, each round also
# trains gpt2 in mixed precision with both tools (hnet-gpt --precision bf16: the head's and linear layers' products
# on bf16 operands; PyTorch: bf16 autocast), a like-for-like pair beside the f32 one.
# PyTorch comes from the Python environment when it has torch and transformers, else the script installs them into
# a private venv ($HOME/.cache/hnet-gpt/bench-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
device=cpu preset=small batch=8 seq=128 steps=10 rounds="" name="" features=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --seq-len) seq=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --features) features=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
name=${name:-$device}
if [ -z "$rounds" ]; then if [ "$device" = cpu ]; then rounds=5; else rounds=1; fi; fi
[ "$device" = cuda ] && [ -z "$features" ] && features=cuda
command="scripts/bench.sh --device $device --preset $preset --batch-size $batch --seq-len $seq --steps $steps --rounds $rounds"
out=docs/results/bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
log="$out/$name.log"
# The log is a committed artifact: the temporary directory's name is machine-specific, so it reads $WORK there;
# progress bars are noise in a file.
export HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1
exec > >(sed -u "s|$work|\$WORK|g" | tee "$log") 2>&1
echo "# $command  ($(date -u +%Y-%m-%dT%H:%MZ))"

python=python3
if ! python3 -c 'import torch, transformers, safetensors' 2>/dev/null; then
  venv="$HOME/.cache/hnet-gpt/bench-venv"
  if ! "$venv/bin/python" -c 'import torch, transformers, safetensors' 2>/dev/null; then
    echo "==> installing PyTorch and transformers into $venv (once)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch transformers safetensors
  fi
  python="$venv/bin/python"
fi

echo "==> building hnet-gpt (release${features:+, features $features})"
cargo build --release --quiet -p hnet-gpt ${features:+--features "$features"}
bin="$CARGO_TARGET_DIR/release/hnet-gpt"

# One set of weights for both tools: PyTorch draws them, hnet-gpt imports them.
"$bin" init --arch gpt2 --preset "$preset" --out "$work/init.safetensors" > /dev/null
"$bin" info --checkpoint "$work/init.safetensors" --json > "$work/config.json"
"$python" scripts/bench/torch_side.py init --config "$work/config.json" --out "$work/hf"
"$bin" import-hf "$work/hf" --out "$work/gpt2.safetensors" > /dev/null

# 256 new tokens after a 64-token prompt, fewer where the context is shorter (Hugging Face's learned positions end
# there; hnet-gpt would slide its window, which would no longer be the same computation).
new_tokens=$(python3 -c "import json,sys; n=json.load(open(sys.argv[1]))['config']['gpt2']['n_positions']; print(max(0, min(256, n - 64)))" "$work/config.json")
torch_flags=(--device "$device" --batch-size "$batch" --seq-len "$seq" --train-steps "$steps" --new-tokens "$new_tokens")
[ "$device" = cpu ] || torch_flags+=(--bf16)
[ "$device" = wgpu ] && torch_flags[1]=cuda
summary() {
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print({k: round(v['tokens_per_second'],1) for k,v in d.items() if isinstance(v, dict) and 'tokens_per_second' in v})" "$1"
}
tools=(gpt2 torch hybrid hnet)
if [ "$device" = cpu ] && grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null; then tools+=(gpt2-bf16 torch-bf16); fi
for round in $(seq 1 "$rounds"); do
  for tool in "${tools[@]}"; do
    echo "==> round $round: ${tool/torch/PyTorch gpt2}"
    if [ "$tool" = torch ]; then
      "$python" scripts/bench/torch_side.py run --config "$work/config.json" --hf "$work/hf" --prompt "$work/hnet-gpt2.1.json" \
        "${torch_flags[@]}" > "$work/torch.$round.json"
      summary "$work/torch.$round.json"
      continue
    fi
    if [ "$tool" = torch-bf16 ]; then
      "$python" scripts/bench/torch_side.py run --config "$work/config.json" --hf "$work/hf" "${torch_flags[@]}" --bf16 \
        --new-tokens 0 > "$work/torch-bf16.$round.json"
      summary "$work/torch-bf16.$round.json"
      continue
    fi
    if [ "$tool" = gpt2-bf16 ]; then
      "$bin" bench --arch gpt2 --precision bf16 --preset "$preset" --device "$device" --batch-size "$batch" \
        --seq-len "$seq" --train-steps "$steps" --new-tokens 0 > "$work/hnet-gpt2-bf16.$round.json"
      summary "$work/hnet-gpt2-bf16.$round.json"
      continue
    fi
    gen=(--new-tokens 0)
    [ "$tool" = gpt2 ] && gen=(--checkpoint "$work/gpt2.safetensors" --new-tokens "$new_tokens")
    "$bin" bench --arch "$tool" --preset "$preset" --device "$device" --batch-size "$batch" --seq-len "$seq" \
      --train-steps "$steps" "${gen[@]}" > "$work/hnet-$tool.$round.json"
    summary "$work/hnet-$tool.$round.json"
  done
done
echo "==> report"
"$python" scripts/bench/report.py --dir "$work" --name "$name" --command "$command" --out "$out"
