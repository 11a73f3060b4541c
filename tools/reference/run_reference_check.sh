#!/usr/bin/env bash
# Writes one Wan2.1 reference case with the independent PyTorch reference, then
# runs a C++ checker on it. For sh_tests of the C++ components:
#   run_reference_check.sh <wan_reference.py> <case> <checker> [checker args...]
# The checker is run as `<checker> --case=<file> [checker args...]` (pass
# --tol=1e-4 among the args); its exit status is the test's.
set -euo pipefail
writer=$1
case_name=$2
checker=$3
shift 3
out=$(mktemp -d "${TEST_TMPDIR:-/tmp}/wanref.XXXXXX")
trap 'rm -rf "$out"' EXIT

# Debian's interpreter has python3-torch; the PATH's python3 may not.
python=""
for candidate in /usr/bin/python3 python3; do
  if command -v "$candidate" >/dev/null &&
     "$candidate" -c 'import torch, numpy' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [[ -z "$python" ]]; then
  echo "run_reference_check: no python3 with torch and numpy" \
       "(Debian: apt-get install python3-torch python3-numpy)" >&2
  exit 1
fi
"$python" "$writer" "$case_name" --out="$out/$case_name.safetensors"
"$checker" --case="$out/$case_name.safetensors" "$@"
