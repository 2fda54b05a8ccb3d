#!/usr/bin/env bash
# A modern decoder on the CPU, hnet-gpt beside the reference tools in one run: a repository of Qwen2.5-Coder-0.5B's
# exact shape and vocabulary (random weights at its initialisation scale, bf16 as shipped; scripts/bench/decoder.py),
# greedy generation of 256 tokens after a 64-token prompt, time to first token for a 1,000-token prompt, and each
# run's peak resident memory (GNU time) — hnet-gpt (imported from the bf16 repository), Hugging Face transformers
# `generate` (f32, the same threads), and llama.cpp (f32 and f16 GGUF of the same weights) when llama-cpp-python is
# installed in the venv (--llama-cpp installs it). Interleaved
# rounds; the report gives medians. Writes docs/results/bench/decoder-0.5b.*
#
#   scripts/bench-decoder.sh [--rounds N] [--llama-cpp]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
rounds=3
with_llama=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --llama-cpp) with_llama=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
out=docs/results/bench
work=$(mktemp -d)
# On failure, the timed commands' own messages (in their GNU time files) before the scratch directory goes.
trap 'status=$?; [ $status -eq 0 ] || tail -n 15 "$work"/*.time 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$out"
log="$out/decoder-0.5b.log"
export HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1
exec > >(sed -u "s|$work|\$WORK|g" | tee "$log") 2>&1
echo "# scripts/bench-decoder.sh --rounds $rounds$([ $with_llama = 1 ] && echo " --llama-cpp")  ($(date -u +%Y-%m-%dT%H:%MZ))"
venv="$HOME/.cache/hnet-gpt/bench-venv"
if ! "$venv/bin/python" -c 'import torch, transformers, safetensors' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch transformers safetensors
fi
py="$venv/bin/python"
threads=$(nproc)

echo "==> building hnet-gpt (release)"
cargo build --release --quiet -p hnet-gpt
bin="$CARGO_TARGET_DIR/release/hnet-gpt"
peak() { sed -n 's/^\s*Maximum resident set size (kbytes): //p' "$1"; }

echo "==> a repository of Qwen2.5-Coder-0.5B's shape (random weights, bf16)"
"$py" scripts/bench/decoder.py init --out "$work/hf"
/usr/bin/time -v "$bin" import-hf "$work/hf" --out "$work/qwen.safetensors" 2> "$work/import.time"
echo "import-hf: peak RSS $(peak "$work/import.time") kB"
/usr/bin/time -v "$bin" info --checkpoint "$work/qwen.safetensors" > /dev/null 2> "$work/info.time"

llama=""
if [ "$with_llama" = 1 ] && ! "$py" -c 'import llama_cpp, gguf' 2>/dev/null; then
  echo "==> installing llama-cpp-python (builds llama.cpp: about 15 minutes on 2 cores) and gguf"
  "$venv/bin/pip" install --quiet llama-cpp-python gguf
fi
if "$py" -c 'import llama_cpp, gguf' 2>/dev/null; then
  # The same weights as GGUF, written by llama.cpp's own writer library (scripts/bench/decoder.py says why not its
  # converter).
  for t in f32 f16; do "$py" scripts/bench/decoder.py gguf --hf "$work/hf" --type "$t" --out "$work/qwen-$t.gguf" > /dev/null; done
  llama="f32 f16"
  echo "llama.cpp: llama-cpp-python $("$py" -c 'import llama_cpp; print(llama_cpp.__version__)'), GGUF f32 and f16 of the same weights"
else
  echo "note: llama.cpp rows left out (run with --llama-cpp to install llama-cpp-python and gguf into $venv)"
fi

for round in $(seq 1 "$rounds"); do
  echo "==> round $round"
  /usr/bin/time -v "$bin" bench --checkpoint "$work/qwen.safetensors" --train-steps 0 --prompt-tokens 64 --new-tokens 256 \
    --gen-runs 1 --matmul-size 512 > "$work/hnet.$round.json" 2> "$work/hnet.$round.time"
  /usr/bin/time -v "$bin" bench --checkpoint "$work/qwen.safetensors" --train-steps 0 --prompt-tokens 1000 --new-tokens 1 \
    --gen-runs 1 --matmul-size 512 > "$work/hnet-ttft.$round.json" 2> "$work/hnet-ttft.$round.time"
  /usr/bin/time -v "$py" scripts/bench/decoder.py torch --hf "$work/hf" --prompt "$work/hnet.$round.json" --new-tokens 256 \
    --threads "$threads" > "$work/torch.$round.json" 2> "$work/torch.$round.time"
  /usr/bin/time -v "$py" scripts/bench/decoder.py torch --hf "$work/hf" --prompt "$work/hnet-ttft.$round.json" --new-tokens 1 \
    --threads "$threads" > "$work/torch-ttft.$round.json" 2> "$work/torch-ttft.$round.time"
  for t in $llama; do
    /usr/bin/time -v "$py" scripts/bench/decoder.py llama-cpp --gguf "$work/qwen-$t.gguf" --prompt "$work/hnet.$round.json" \
      --new-tokens 256 --threads "$threads" > "$work/llama-$t.$round.json" 2> "$work/llama-$t.$round.time"
    /usr/bin/time -v "$py" scripts/bench/decoder.py llama-cpp --gguf "$work/qwen-$t.gguf" --prompt "$work/hnet-ttft.$round.json" \
      --new-tokens 1 --threads "$threads" > "$work/llama-$t-ttft.$round.json" 2> "$work/llama-$t-ttft.$round.time"
  done
  for f in "$work"/*."$round".json; do
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); g=d.get('generate', d); print(sys.argv[1].split('/')[-1], round(g['tokens_per_second'],2), 'tok/s, first token', round(g['time_to_first_token_seconds'],3), 's')" "$f"
  done
done
echo "==> report"
python3 scripts/bench/decoder_report.py --dir "$work" --rounds "$rounds" --out "$out" --llama "$llama"
