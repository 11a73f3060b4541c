#!/usr/bin/env bash
# Runs the unit tests that do not link LibTorch under ASan + UBSan
# (.bazelrc's --config=asan: gcc -fsanitize=address,undefined, objects in
# their own output directory so the normal build stays cached).
#
# Which tests: every cc_test under the packages below, except those that
# depend on LibTorch (too slow under ASan, and its uninstrumented kernels
# add nothing) or dlopen() the SentencePiece shim (RTLD_DEEPBIND, which the
# sanitizer runtime refuses). //clients/... (the CLI) is left out to keep
# CI's cold asan + fuzz steps near 12 minutes on 2 cores: with it, 51 tests
# took 1053 CPU-seconds cold; server/ and scheduler/ are where hostile input
# arrives.
#
# Usage: tools/asan_test.sh [extra bazel test flags]
# Env: BAZEL (default "bazel"; e.g. "bazel --output_base=/tmp/asan" to keep
# the sanitizer build out of a shared Bazel server).
# Prints "asan: N passed, N failed" last; exit status is bazel's.
set -euo pipefail
cd "$(dirname "$0")/.."
BAZEL=${BAZEL:-bazel}
universe='//common/... + //scheduler/... + //server/... + //parallel/... + //worker/...'
excluded='@libtorch//... + //worker/models/text:sentencepiece_model'
# shellcheck disable=SC2086
tests=$($BAZEL query --noshow_progress \
  "let t = $universe in kind(cc_test, \$t) except rdeps(\$t, $excluded)")
echo "asan: $(wc -w <<<"$tests") test targets" >&2
log=$(mktemp)
set +e
# shellcheck disable=SC2086
$BAZEL test --config=asan "$@" $tests 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
failed=$(grep -cE '^//[^ ]+ +(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)' "$log" || true)
rm -f "$log"
echo "asan: ${passed} passed, ${failed} failed"
exit "$rc"
