#!/usr/bin/env bash
# Measures what a 0.5B code model costs in the page (headless chromium): a repository of Qwen2.5-Coder-0.5B's exact
# shapes and vocabulary size with random bf16 weights, served by the tests' local Hub, loaded with `?model=hf:…`
# (converted tensor by tensor as it downloads): time to Ready, the worker's peak wasm heap or the GPU memory, the
# first token after a short and a 1,000-token prompt and the decoding speed, and a reload from the Cache API. Writes
# docs/results/browser/qwen-0.5b.{json,md}.
# Needs: the CLI (`cargo build -p hnet-gpt`, for counting the prompt's tokens), dist/ (trunk build --release), numpy
# (a venv is made). Env: BACKENDS (cpu,webgpu: the browser's WebGPU adapter, SwiftShader here — on a machine with a real GPU,
# CHROMIUM pointing at a browser that uses it), SHORT (32: a short prompt first), PROMPT (1000), TOKENS (8),
# LIMIT_S (900 per phase), OUT.
set -euo pipefail
exec "$(dirname "$0")/bench/browser-measure.sh" --qwen-coder-0.5b qwen-coder-0.5b-random tests/e2e/qwen-0.5b.measure.mjs
