#!/usr/bin/env bash
# Measures what GPT-2 small costs: `hnet-gpt pull` and the fresh hybrid in the CLI, and in the page (headless
# chromium, WebGPU on whatever adapter the machine has, and the CPU) loading `?model=hf:…&hybrid=1`, memory, a short
# completion and fine-tuning steps. The model is a GPT-2-small-shaped repository with random weights, served by the
# tests' local Hub (timing and memory do not depend on the weights' values; where huggingface.co is reachable,
# `hnet-gpt pull gpt2` is the real thing). Writes docs/results/browser/gpt2-small.{json,md}.
# Needs: the CLI (`cargo build -p hnet-gpt`, what the test suite builds), dist/ (trunk build), numpy + safetensors (a venv is
# made). Env: BACKENDS (cpu,webgpu), STEPS (2), TOKENS (4), LIMIT_S (2400, per phase; a phase past it is reported as
# not finished, with what was measured before it), OUT, HNET_GPT_BIN.
set -euo pipefail
exec "$(dirname "$0")/bench/browser-measure.sh" --gpt2-small gpt2-small-random tests/e2e/gpt2-small.measure.mjs
