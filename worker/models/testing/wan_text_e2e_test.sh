#!/usr/bin/env bash
# Writes a tiny random Wan2.1 checkpoint (both layouts) with
# tools/wan/make_wan_checkpoint.py and the in-tree spiece.model, then runs
# wan_text_e2e_check (text prompt -> 5-frame video) on each layout.
#   wan_text_e2e_test.sh <spiece.model> <checker> <tools/wan files...>
set -euo pipefail
spiece=$1
checker=$2
shift 2
writer=""
for f in "$@"; do
  [[ "$f" == */make_wan_checkpoint.py ]] && writer=$f
done
[[ -n "$writer" ]] || { echo "no make_wan_checkpoint.py in: $*" >&2; exit 1; }
out=$(mktemp -d "${TEST_TMPDIR:-/tmp}/wantext.XXXXXX")
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 "$writer" --out="$out/ck" --layout=both --preset=tiny \
  --seed=3 --spiece="$spiece"
for layout in wan diffusers; do
  echo "== $layout"
  "$checker" --model_dir="$out/ck/$layout"
done
