#!/usr/bin/env bash
# A modern decoder on a GPU backend, its weight matrices kept in f32 and in f16 (as the playground keeps them on a
# WebGPU adapter with shader-f16): a repository of Qwen2.5-Coder-0.5B's exact shapes and vocabulary (random bf16
# weights, the playground measurement's: scripts/fixtures/gen_reference.py --qwen-coder-0.5b) imported once, then
# `hnet-gpt bench` for each: the weights' bytes, the device memory burn's allocator holds before loading, with the
# model loaded and after generating, the first token after a short and a long prompt, decoding tokens/s after it.
# Writes docs/results/bench/decoder-0.5b-DEVICE.{md,json,log}.
#
#   scripts/bench-decoder-gpu.sh [--device wgpu|cuda]
#
# wgpu: the default adapter (Mesa's lavapipe where there is no GPU); cuda: a build with `--features cuda,gpu-fast`.
# Env: SHORT (32), PROMPT (1000; 0 leaves the long prompt out), TOKENS (8 new tokens), PROFILE (release: the cargo
# profile of the hnet-gpt it builds; `dev` is the one the tests build).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
device=wgpu
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case "$device" in
  wgpu) features=() ;;
  cuda) features=(--features cuda,gpu-fast) ;;
  *) echo "--device is wgpu or cuda, not $device" >&2; exit 2 ;;
esac
short=${SHORT:-32} prompt=${PROMPT:-1000} tokens=${TOKENS:-8} profile=${PROFILE:-release}
out=docs/results/bench
name=decoder-0.5b-$device
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
command="$(for k in SHORT PROMPT TOKENS PROFILE; do [ -z "${!k:-}" ] || printf '%s=%s ' "$k" "${!k}"; done)scripts/bench-decoder-gpu.sh --device $device"
exec > >(sed -u "s|$work|\$WORK|g" | tee "$out/$name.log") 2>&1
echo "# $command  ($(date -u +%Y-%m-%dT%H:%MZ))"

echo "==> building hnet-gpt (profile $profile)"
cargo build --quiet --profile "$profile" -p hnet-gpt "${features[@]}"
bin="$CARGO_TARGET_DIR/$([ "$profile" = dev ] && echo debug || echo "$profile")/hnet-gpt"

echo "==> a repository of Qwen2.5-Coder-0.5B's shapes (random weights, bf16), imported"
"$(measure_python)" scripts/fixtures/gen_reference.py --qwen-coder-0.5b "$work"
"$bin" import-hf "$work/qwen-coder-0.5b-random" --out "$work/qwen.safetensors"

for weights in f32 f16; do
  for p in $short $prompt; do
    [ "$p" -gt 0 ] || continue
    echo "==> weights in $weights, a $p-token prompt, $tokens new tokens"
    "$bin" bench --device "$device" --weights "$weights" --checkpoint "$work/qwen.safetensors" --train-steps 0 \
      --prompt-tokens "$p" --new-tokens "$tokens" --gen-runs 1 > "$work/$weights-$p.json"
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); g, m = d["generate"], d["weights"]["device_memory_bytes"]
print("first token %.2f s, decoding %.2f tokens/s; device memory (bytes) loaded %s, after generating %s" % (g["time_to_first_token_seconds"], g["decode_tokens_per_second"], m["loaded"], m["after_generation"]))' "$work/$weights-$p.json"
  done
done

echo "==> report"
python3 scripts/bench/decoder_gpu_report.py --dir "$work" --short "$short" --prompt "$prompt" --command "$command" --out "$out/$name"
