# Sourced by the other scripts: shared paths and tool locations.
# Builds go to a cache outside the clone so CI and fresh clones reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hnet-gpt/target}"
export PATH="$HOME/.cargo/bin:$PWD/tests/e2e/node_modules/.bin:$PATH"
# The default model the playground serves (built by scripts/setup.sh when absent).
DEFAULT_MODEL=public/models/default.safetensors

# Prints the python of a venv with numpy, safetensors and tokenizers (made when missing; MEASURE_VENV says where),
# for the fixture generators the measurements run (scripts/bench/browser-measure.sh, scripts/bench-decoder-gpu.sh).
measure_python() {
  local venv=${MEASURE_VENV:-$HOME/.cache/hnet-gpt/measure-venv}
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
  "$venv/bin/python" -c "import numpy, safetensors, tokenizers" 2>/dev/null || "$venv/bin/pip" install --quiet numpy safetensors tokenizers >&2
  echo "$venv/bin/python"
}
