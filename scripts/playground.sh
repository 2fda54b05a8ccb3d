#!/usr/bin/env bash
# Sets up what is missing, builds the playground and serves it at http://127.0.0.1:8080 .
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
cargo fetch --target wasm32-unknown-unknown --quiet
# trunk 0.21 looks for the crate in the working directory, so it runs from app/ with the top-level trunk.toml.
cd app && exec trunk serve --config ../trunk.toml --release --offline --address 127.0.0.1 --port "${PORT:-8080}"
