#!/usr/bin/env bash
# C++ vs the independent Python reference, in one run, on the same random
# Wan2.1 weights and inputs (the tiny t5 / dit / vae reference cases): umT5
# encode, one DiT forward, one DiT CFG step, VAE decode; fp32, CPU.
#   bazel run //bench:wan_component_bench -- [--threads=1] [--repeats=5] \
#       [--vae_base_dim=96]   # the VAE at Wan2.1's real width (default 8)
# Prints each side's median seconds, the C++/Python ratio (< 1 = C++ faster)
# and each side's max|d|/max|ref| against the reference's float64 answer.
set -euo pipefail
writer=$1
py_bench=$2
timer=$3
shift 3
threads=1
repeats=5
vae_args=()
for arg in "$@"; do
  case "$arg" in
    --threads=*) threads=${arg#--threads=} ;;
    --repeats=*) repeats=${arg#--repeats=} ;;
    --vae_base_dim=*) vae_args=("$arg") ;;
    *) echo "wan_component_bench: unknown argument $arg" \
            "(allowed: --threads=N --repeats=N --vae_base_dim=N)" >&2
       exit 2 ;;
  esac
done
out=$(mktemp -d "${TEST_TMPDIR:-/tmp}/wanbench.XXXXXX")
trap 'rm -rf "$out"' EXIT

python=""
for candidate in /usr/bin/python3 python3; do
  if command -v "$candidate" >/dev/null &&
     "$candidate" -c 'import torch, numpy' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [[ -z "$python" ]]; then
  echo "wan_component_bench: no python3 with torch and numpy" \
       "(Debian: apt-get install python3-torch python3-numpy)" >&2
  exit 1
fi

for c in t5 dit; do
  "$python" "$writer" "$c" --out="$out/$c.safetensors" >/dev/null
done
"$python" "$writer" vae --out="$out/vae.safetensors" "${vae_args[@]}" \
    >/dev/null
cases=(--t5_case="$out/t5.safetensors" --dit_case="$out/dit.safetensors"
       --vae_case="$out/vae.safetensors")
export OMP_NUM_THREADS=$threads
"$timer" "${cases[@]}" --threads="$threads" --repeats="$repeats" \
    > "$out/cpp.json"
"$python" "$py_bench" "${cases[@]}" --threads="$threads" \
    --repeats="$repeats" --check > "$out/python.json"
"$python" - "$out/cpp.json" "$out/python.json" <<'PY'
import json, sys
cpp = json.load(open(sys.argv[1]))
py = json.load(open(sys.argv[2]))
print(f"Wan2.1 reference cases (t5/dit tiny, vae base_dim "
      f"{py['vae_base_dim']}), fp32 CPU, {cpp['threads']} thread(s), "
      f"median of {cpp['repeats']}; python torch {py['torch']}")
print(f"{'component':<16}{'C++ s':>12}{'Python s':>12}{'C++/Python':>12}"
      f"{'C++ err':>11}{'Py f32 err':>11}")
errs_c = cpp["max_rel_err_vs_expected"]
errs_p = py["max_rel_err_vs_expected"]
for key, label, err in (("t5_encode_s", "t5 encode", "t5"),
                        ("dit_forward_s", "dit forward", "dit"),
                        ("dit_cfg_step_s", "dit cfg step", "dit"),
                        ("vae_decode_s", "vae decode", "vae")):
    c, p = cpp[key], py[key]
    print(f"{label:<16}{c:>12.5f}{p:>12.5f}{c / p:>12.3f}"
          f"{errs_c[err]:>11.1e}{errs_p[err]:>11.1e}")
bad = [k for k, v in errs_c.items() if not v <= 1e-4]
if bad:
    print(f"FAIL: C++ results off the reference (> 1e-4): {bad}",
          file=sys.stderr)
    sys.exit(1)
PY
