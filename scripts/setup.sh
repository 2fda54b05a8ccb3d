#!/usr/bin/env bash
# Installs what the playground and the tests need, skipping what is already there. Safe to run repeatedly.
#   rustup target wasm32, trunk 0.21.14 and wasm-bindgen-cli (the lockfile's version) via cargo install,
#   npm packages of tests/e2e (playwright-core, binaryen 132 for wasm-opt) and of the code editor (CodeMirror 6,
#   esbuild; the bundle is built here), Debian's chromium and Mesa's
#   lavapipe (software Vulkan, so wgpu code runs without a GPU), bubblewrap (the sandbox for generated code), and
#   the default model in public/models/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
step() { printf '\n==> %s\n' "$*"; }

step "Rust target wasm32-unknown-unknown"
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

step "trunk 0.21.14"
# trunk 0.22 needs rustc >= 1.96.1; this machine has 1.95. A debug build: trunk only orchestrates (cargo,
# wasm-bindgen, wasm-opt do the work), and compiling it unoptimised takes half the time of a release build.
if ! trunk --version 2>/dev/null | grep -q '0.21.14'; then
  cargo install --locked --debug trunk --version 0.21.14
fi

step "wasm-bindgen-cli (the lockfile's version)"
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wb_version\$"; then
  # Without --locked: its own lockfile pins a webpki-roots version the registry here does not serve.
  cargo install wasm-bindgen-cli --version "$wb_version"
fi

step "System packages (chromium, Mesa lavapipe, bubblewrap)"
need=()
command -v chromium >/dev/null || need+=(chromium)
# bubblewrap: the sandbox that model-generated code (HumanEval) runs in; without it, that code does not run.
command -v bwrap >/dev/null || need+=(bubblewrap)
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || need+=(mesa-vulkan-drivers libvulkan1)
if [ ${#need[@]} -gt 0 ]; then
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need[@]}"
fi

step "npm packages (tests/e2e, app/editor)"
(cd tests/e2e && { [ -d node_modules ] && npm ls --silent >/dev/null 2>&1 || npm ci --no-audit --no-fund; })
(cd app/editor && { [ -d node_modules ] && npm ls --silent >/dev/null 2>&1 || npm ci --no-audit --no-fund; })

step "The code editor bundle (CodeMirror 6 through esbuild: app/editor/dist/editor.js)"
if [ ! -f app/editor/dist/editor.js ] || [ -n "$(find app/editor/editor.js app/editor/package-lock.json -newer app/editor/dist/editor.js)" ]; then
  (cd app/editor && npm run --silent build)
fi

step "Default model ($DEFAULT_MODEL)"
if [ ! -f "$DEFAULT_MODEL" ]; then
  cargo run --quiet -p hnet-gpt -- init --arch gpt2 --preset tiny --seed 0 --out "$DEFAULT_MODEL"
fi
