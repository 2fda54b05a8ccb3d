#!/usr/bin/env bash
# Sets up what is missing, builds the playground and serves it at http://127.0.0.1:8080 .
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
cargo fetch --target wasm32-unknown-unknown --quiet
trunk serve --release --offline --address 127.0.0.1 --port "${PORT:-8080}"
