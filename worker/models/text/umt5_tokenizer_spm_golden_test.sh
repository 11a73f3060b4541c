#!/usr/bin/env bash
# The C++ tokenizer's ids equal tools/reference/spm_golden.py's
# (python3-sentencepiece + HF truncation) for the in-tree test model, on every
# line of the training text and Wan's negative prompt, at max_length 512 and 8.
#   umt5_tokenizer_spm_golden_test.sh <umt5_tokenize> <spm_golden.py> <model> <prompts>
set -euo pipefail
tool=$1
golden=$2
model=$3
prompts=$4
out=$(mktemp -d "${TEST_TMPDIR:-/tmp}/spmgolden.XXXXXX")
trap 'rm -rf "$out"' EXIT
for max_length in 512 8; do
  /usr/bin/python3 "$golden" --model "$model" --prompts "$prompts" \
      --max_length "$max_length" > "$out/python.txt"
  "$tool" --model="$model" --prompts="$prompts" \
      --max_length="$max_length" > "$out/cpp.txt"
  lines=$(wc -l < "$out/python.txt")
  if [[ "$lines" -lt 10 ]]; then
    echo "spm_golden.py printed only $lines lines" >&2
    exit 1
  fi
  if ! diff "$out/python.txt" "$out/cpp.txt"; then
    echo "umT5 ids differ from spm_golden.py at max_length $max_length" >&2
    exit 1
  fi
  echo "max_length $max_length: $lines prompts, identical ids"
done
