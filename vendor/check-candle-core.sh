#!/usr/bin/env bash
# Checks that vendor/candle-core is candle-core 0.11.1 as published on crates.io plus
# vendor/candle-core.patch, and nothing else. `--write` regenerates the patch from the vendored
# copy instead (after a change to it). Run by hand, never by CI: it downloads the crate from
# static.crates.io, or takes it from CRATE=path/to/candle-core-0.11.1.crate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sha256=d11c8be87cfbaef9ebb62fb3f850d1fc8e00cc1d11d393fdbe55a4d5c2cdb325 # Cargo.lock's, before the patch
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

crate=${CRATE:-}
if [ -z "$crate" ]; then
  crate=$tmp/candle-core-0.11.1.crate
  curl -fsSL -o "$crate" https://static.crates.io/crates/candle-core/candle-core-0.11.1.crate
fi
echo "$sha256  $crate" | sha256sum -c --quiet
tar xzf "$crate" -C "$tmp"
# The vendored copy keeps the library only: no tests, benches or examples (their targets are
# removed from Cargo.toml by the patch).
mkdir "$tmp/a"
cp -r "$tmp/candle-core-0.11.1"/{src,LICENSE,README.md,Cargo.toml} "$tmp/a/"

if [ "${1:-}" = --write ]; then
  cp -r "$here/candle-core" "$tmp/b"
  (cd "$tmp" && diff -ruN a b || true) |
    sed -E 's/^(\+\+\+|---) ([^\t]+)\t.*/\1 \2/' >"$here/candle-core.patch"
  echo "wrote $here/candle-core.patch ($(wc -l <"$here/candle-core.patch") lines)"
  exit 0
fi

(cd "$tmp/a" && patch -s -p1 <"$here/candle-core.patch")
if diff -r "$tmp/a" "$here/candle-core"; then
  echo "vendor/candle-core = candle-core 0.11.1 from crates.io + vendor/candle-core.patch"
else
  echo "vendor/candle-core differs from candle-core 0.11.1 + vendor/candle-core.patch (above)" >&2
  exit 1
fi
