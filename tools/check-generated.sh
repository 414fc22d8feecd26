#!/usr/bin/env bash
# Regenerates every generated source into a temporary file and fails if the committed copy differs.
# Generated today: crates/wfp-core/src/catalogue/tables.rs (tools/gen_catalogue.py, then rustfmt).
set -euo pipefail
cd "$(dirname "$0")/.."
spec=../shared/spec/wfp-reference.md
out=crates/wfp-core/src/catalogue/tables.rs
tmp=$(mktemp --suffix=.rs)
trap 'rm -f "$tmp"' EXIT
python3 tools/gen_catalogue.py "$spec" >"$tmp"
rustfmt --edition 2021 --config-path rustfmt.toml "$tmp"
if ! diff -u "$out" "$tmp" >/dev/null; then
  echo "generated source out of date: $out (regenerate: python3 tools/gen_catalogue.py $spec > $out && rustfmt $out)" >&2
  diff -u "$out" "$tmp" | head -40 >&2
  exit 1
fi
echo "generated sources up to date"
