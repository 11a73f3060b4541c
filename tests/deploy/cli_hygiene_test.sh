#!/usr/bin/env bash
# --help lists every flag and exits 0, --version prints version and build,
# for dserve_server, dserve_worker, dserve (CLI) and loadgen; the CLI checks
# --out before it sends anything.
#   args: pairs of BINARY SOURCE (the file whose ABSL_FLAGs it defines)
set -euo pipefail
fail=0
while (($#)); do
  bin=$1 src=$2; shift 2
  name=$(basename "$bin")
  help=$("$bin" --help) || { echo "FAIL: $name --help exited $?"; fail=1; continue; }
  # Every flag the source defines, e.g. ABSL_FLAG(int, port, ...).
  flags=$(tr '\n' ' ' < "$src" | grep -oE 'ABSL_FLAG\([^,]+, *[a-z0-9_]+' | sed -E 's/.*, *//')
  [[ -n $flags ]] || { echo "FAIL: no ABSL_FLAG found in $src"; fail=1; }
  n=0
  for f in $flags; do
    n=$((n + 1))
    grep -qE -- "--$f[ =]|-$f \(" <<<"$help" || { echo "FAIL: $name --help does not list --$f"; fail=1; }
  done
  grep -q "No flags matched" <<<"$help" && { echo "FAIL: $name says No flags matched"; fail=1; }
  version=$("$bin" --version) || { echo "FAIL: $name --version exited $?"; fail=1; }
  grep -qE "^$name [0-9]+\.[0-9]+\.[0-9]+ \(build .*(opt|dbg)\)$" <<<"$version" \
    || { echo "FAIL: $name --version printed '$version'"; fail=1; }
  echo "ok: $name --help lists its $n flags; --version: $version"
done

# The CLI refuses an unusable --out before contacting the server: port 1 has
# no server, so reaching the network would end in UNAVAILABLE (exit 24).
cli=$(dirname "$bin")/dserve
[[ -x $cli ]] || cli=$(find . -path '*clients/dserve' -type f | head -1)
set +e
err=$("$cli" --server=127.0.0.1:1 --timeout_s=5 generate --prompt "a red circle" \
  --out "$TEST_TMPDIR/no_such_dir/x.png" 2>&1 >/dev/null)
rc=$?
set -e
if [[ $rc -ne 3 || $err != *"no_such_dir does not exist"* ]]; then
  echo "FAIL: generate --out into a missing directory: exit $rc, '$err' (want 3)"; fail=1
else
  echo "ok: generate --out into a missing directory exits 3 before sending: $err"
fi
((fail == 0)) && echo "PASS" || exit 1
