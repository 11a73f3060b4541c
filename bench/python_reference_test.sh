#!/usr/bin/env bash
# Writes the default model's random DiT weights and one forward + one CFG step
# from the C++ side (fp32, CPU), then checks the independent PyTorch
# implementation gives the same outputs within 1e-4 relative.
#   python_reference_test.sh <dit_reference_io> <wan_dit_reference.py>
set -euo pipefail
io_tool=$1
reference=$2
out=$(mktemp -d "${TEST_TMPDIR:-/tmp}/pyref.XXXXXX")
trap 'rm -rf "$out"' EXIT

# A python3 that has torch: the PATH's, else Debian's (python3-torch).
python=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null &&
     "$candidate" -c 'import torch, numpy' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [[ -z "$python" ]]; then
  echo "python_reference_test: no python3 with torch and numpy" \
       "(Debian: apt-get install python3-torch python3-numpy)" >&2
  exit 1
fi

# 2 frames, 32x48 pixels: 2*8*12 = 192 tokens, the model's 4 layers.
"$io_tool" --out_dir="$out" --model=default --frames=2 --height=32 --width=48 \
    --threads=1 --repeats=3
OMP_NUM_THREADS=1 "$python" "$reference" --dir="$out" --tol=1e-4 --threads=1
