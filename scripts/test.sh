#!/usr/bin/env bash
# Runs every test: formatting and clippy lints (native crates, and the model and app for wasm32), Rust unit and integration tests
# (CPU and, through lavapipe, wgpu; the sandbox attacks as root and as an ordinary user), the tokenizer
# reproducibility check, the wasm build of the playground, and the browser end-to-end suite. Each phase is timed;
# the table at the end is what to look at when CI's 90 minutes get tight.
set -euo pipefail
cd "$(dirname "$0")/.."
phases=()
started=$(date +%s)
phase_start=$started
phase() {
  local now; now=$(date +%s)
  [ ${#phases[@]} -gt 0 ] && phases[-1]="${phases[-1]}|$(( now - phase_start ))"
  phase_start=$now
  phases+=("$1")
  printf '\n==> %s\n' "$1"
}
report() {
  local now; now=$(date +%s)
  [ ${#phases[@]} -gt 0 ] && phases[-1]="${phases[-1]}|$(( now - phase_start ))"
  printf '\n%-62s %8s\n' "phase" "seconds"
  for p in "${phases[@]}"; do printf '%-62s %8s\n' "${p%|*}" "${p##*|}"; done
  printf '%-62s %8s\n' "total" "$(( now - started ))"
}
trap report EXIT

phase "setup (installs only what is missing)"
scripts/setup.sh
source scripts/env.sh

phase "cargo fmt --check"
cargo fmt --all --check

# Lints without a second build: the workspace's own crates compile through clippy-driver (a full compiler with
# clippy's lints), with warnings denied, in the two builds the tests need anyway — native (`cargo test` builds the
# lib, bins, tests and examples: clippy's --all-targets) and wasm32 (trunk's build of the model and the app).
# Dependencies compile with plain rustc, as under `cargo clippy`.
export RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

phase "cargo test (native: model + CLI, examples built too; clippy -D warnings as it compiles)"
# Default members: model and cli (the app is tested in the browser); with the test hooks of tests/faults.rs.
cargo test --no-fail-fast --features hnet-gpt/fault-injection

phase "public/tokenizer.json is reproducible from OpenAI's GPT-2 files"
# The example binary `cargo test` just built: no second feature set of burn for one check.
MAKE_TOKENIZER="$CARGO_TARGET_DIR/debug/examples/make_tokenizer" scripts/make-tokenizer.sh --check

phase "trunk build (wasm32, release; clippy -D warnings as it compiles; wasm-opt -O1 for the tests, -Oz for the playground)"
cargo fetch --target wasm32-unknown-unknown --quiet
# The page under test is the playground's, but with a cheaper wasm-opt level: -Oz costs minutes on 2 cores and
# changes the size of the wasm, not what it does.
sed 's/data-wasm-opt="z"/data-wasm-opt="1"/' app/index.html > app/index-tests.html
(cd app && trunk build --config ../trunk.toml --release --offline=true app/index-tests.html)
[ ! -f dist/index-tests.html ] || mv dist/index-tests.html dist/index.html

phase "browser end-to-end tests (Playwright + Debian chromium, WebGPU on SwiftShader)"
(cd tests/e2e && node --test --test-concurrency=1 *.test.mjs)
echo; echo "All tests passed."
