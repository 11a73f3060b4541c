#!/bin/bash
# make_random_model writes a loadable directory, byte-identical for a seed
# and different for another seed.
set -euo pipefail
bin="$1"
out="${TEST_TMPDIR:-/tmp}"
mkdir -p "$out/a" "$out/b" "$out/c"
"$bin" --out_dir="$out/a" --seed=0 >/dev/null
"$bin" --out_dir="$out/b" --seed=0 >/dev/null
"$bin" --out_dir="$out/c" --seed=1 >/dev/null
grep -q '"name": "dserve-tiny-shapes"' "$out/a/config.json"
cmp "$out/a/model.safetensors" "$out/b/model.safetensors"
cmp "$out/a/config.json" "$out/b/config.json"
if cmp -s "$out/a/model.safetensors" "$out/c/model.safetensors"; then
  echo "seeds 0 and 1 gave identical weights" >&2
  exit 1
fi
if "$bin" --out_dir="$out/missing/dir" 2>/dev/null; then
  echo "writing into a missing directory should fail" >&2
  exit 1
fi
echo PASS
