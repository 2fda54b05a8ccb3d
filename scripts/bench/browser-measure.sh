#!/usr/bin/env bash
# The body of the browser measurements (scripts/browser-*.sh): a random-weight repository written by
# `gen_reference.py FLAG` into a scratch directory (numpy, safetensors and tokenizers in a venv: env.sh's measure_python),
# then `node MEASURE` with REPO_DIR pointing at DIR/REPO. Usage: browser-measure.sh FLAG REPO MEASURE.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
flag=$1 repo=$2 measure=$3
py=$(measure_python)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" scripts/fixtures/gen_reference.py "$flag" "$work"
REPO_DIR="$work/$repo" node "$measure"
