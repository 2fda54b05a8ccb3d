#!/usr/bin/env bash
# Keeps the build cache ($CARGO_TARGET_DIR, shared by every clone and CI run on a machine) from growing without
# bound: every rebuild of a test or binary leaves the previous executable behind under a new hash, and incremental
# state piles up per crate version. Removes, in each profile's deps/, every executable that a newer one of the same
# name replaced, and incremental state untouched for 3 days. Dependencies' libraries stay: they are the cache.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
[ -d "$CARGO_TARGET_DIR" ] || exit 0
before=$(du -sm "$CARGO_TARGET_DIR" | cut -f1)
for deps in "$CARGO_TARGET_DIR"/debug/deps "$CARGO_TARGET_DIR"/release/deps; do
  [ -d "$deps" ] || continue
  # Executables are named NAME-<16 hex digits>; newest first, so each name's first is kept.
  find "$deps" -maxdepth 1 -type f -perm -u+x -regextype posix-extended -regex '.*-[0-9a-f]{16}' -printf '%T@ %p\n' \
    | sort -rn | cut -d' ' -f2- \
    | awk '{ name = $0; sub(/-[0-9a-f]+$/, "", name); if (seen[name]++) print }' \
    | while read -r stale; do rm -f "$stale" "$stale.d" "$stale.dwp"; done
done
find "$CARGO_TARGET_DIR" -maxdepth 3 -type d -path '*/incremental/*' -mtime +3 -prune -exec rm -rf {} + 2>/dev/null || true
after=$(du -sm "$CARGO_TARGET_DIR" | cut -f1)
echo "build cache: ${before} MB -> ${after} MB ($(df -h --output=avail "$CARGO_TARGET_DIR" | tail -1 | tr -d ' ') free on its disk)"
