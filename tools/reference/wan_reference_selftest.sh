#!/usr/bin/env bash
# Runs the independent Wan2.1 reference's self-checks with a python3 that has
# torch (Debian's /usr/bin/python3 with python3-torch; the PATH's may not).
#   wan_reference_selftest.sh <wan_reference_selftest.py>
set -euo pipefail
python=""
for candidate in /usr/bin/python3 python3; do
  if command -v "$candidate" >/dev/null &&
     "$candidate" -c 'import torch, numpy, sentencepiece' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [[ -z "$python" ]]; then
  echo "wan_reference_selftest: no python3 with torch, numpy and sentencepiece" \
       "(Debian: apt-get install python3-torch python3-numpy" \
       "python3-sentencepiece)" >&2
  exit 1
fi
OMP_NUM_THREADS=2 exec "$python" "$1"
