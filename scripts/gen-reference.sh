#!/usr/bin/env bash
# Regenerates model/tests/fixtures/hf-tiny-{gpt2,llama,qwen2,gpt-bigcode} with PyTorch (CPU) + transformers in a
# private venv.
# Only needed to change the fixtures: the Rust tests read the committed files.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${REFERENCE_VENV:-.venv-reference}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet torch transformers safetensors
"$venv/bin/python" scripts/fixtures/gen_reference.py model/tests/fixtures/hf-tiny-gpt2
"$venv/bin/python" scripts/fixtures/gen_reference.py --families model/tests/fixtures
