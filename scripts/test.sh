#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests (CPU and, through lavapipe, wgpu), the tokenizer
# reproducibility check, the wasm build of the playground, and the browser end-to-end suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
step() { printf '\n==> %s\n' "$*"; }

step "cargo test (native: model + CLI)"
cargo test --no-fail-fast   # default members: model and cli (the app is tested in the browser)

step "public/tokenizer.json is reproducible from OpenAI's GPT-2 files"
scripts/make-tokenizer.sh --check

step "trunk build (wasm32, release)"
cargo fetch --target wasm32-unknown-unknown --quiet
(cd app && trunk build --config ../trunk.toml --release --offline)

step "Browser end-to-end tests (Playwright + Debian chromium, WebGPU on SwiftShader)"
(cd tests/e2e && node --test --test-concurrency=1 *.test.mjs)
echo; echo "All tests passed."
