# Sourced by the other scripts: shared paths and tool locations.
# Builds go to a cache outside the clone so CI and fresh clones reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hnet-gpt/target}"
export PATH="$HOME/.cargo/bin:$PWD/tests/e2e/node_modules/.bin:$PATH"
# The default model the playground serves (built by scripts/setup.sh when absent).
DEFAULT_MODEL=public/models/default.safetensors
