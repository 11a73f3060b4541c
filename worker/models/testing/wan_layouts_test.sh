#!/usr/bin/env bash
# Writes one tiny random Wan2.1 checkpoint in both layouts (same weights,
# same seed) with tools/wan/make_wan_checkpoint.py, then checks they load
# into identical pipelines (wan_layouts_check).
#   wan_layouts_test.sh <spiece.model> <checker> <tools/wan files...>
set -euo pipefail
spiece=$1
checker=$2
shift 2
writer=""
for f in "$@"; do
  [[ "$f" == */make_wan_checkpoint.py ]] && writer=$f
done
[[ -n "$writer" ]] || { echo "no make_wan_checkpoint.py in: $*" >&2; exit 1; }
out=$(mktemp -d "${TEST_TMPDIR:-/tmp}/wanlayouts.XXXXXX")
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 "$writer" --out="$out" --layout=both --preset=tiny \
  --seed=3 --spiece="$spiece"
"$checker" --wan_dir="$out/wan" --diffusers_dir="$out/diffusers"
