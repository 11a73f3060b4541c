#!/usr/bin/env bash
# Smoke test of the step-cache benchmark on the default model (2 prompts):
# it runs end to end with a preset and a TeaCache-style row (the binary
# exits 3 if its TeaCache-style loop at threshold 0 does not reproduce the
# uncached image bit for bit), repeated uncached runs are identical, and the
# uncached row plus both rows are printed with their accuracy columns.
#   step_cache_bench_test.sh <step_cache_bench>
set -euo pipefail
bench=$1
out=$("$bench" --n=2 --presets=fast --teacache=0.1:2:2 --threads=1)
echo "$out"
grep -q "repeated uncached runs differing from the first: 0$" <<<"$out"
grep -Eq '^\| uncached \| - \| 0 \|' <<<"$out"
grep -Eq '^\| fast \| 0.25/2/3 \| [0-9]+ of 40 ' <<<"$out"
grep -Eq '^\| TeaCache-style \| 0.1/2/2 \| [0-9]+ of 40 ' <<<"$out"
# 13 columns on every table row.
rows=$(grep -c '^| ' <<<"$out")
[[ "$rows" -eq 5 ]] || { echo "expected 5 table lines, got $rows" >&2; exit 1; }
while IFS= read -r line; do
  cells=$(awk -F'|' '{print NF - 2}' <<<"$line")
  [[ "$cells" -eq 13 ]] || { echo "row with $cells cells: $line" >&2; exit 1; }
done < <(grep '^| ' <<<"$out")
echo PASS
