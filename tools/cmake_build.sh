#!/usr/bin/env bash
# Configures, builds and tests the CMake mirror of the Bazel build (what GPU
# machines without Bazel use), after checking cmake/targets.cmake matches the
# BUILD.bazel files.
#
#   tools/cmake_build.sh [extra cmake -D options]
#   JOBS=8 BUILD_DIR=build-gpu tools/cmake_build.sh -DTorch_DIR=... -DDSERVE_WITH_CUDA=ON
#   CTEST_ARGS="-R 'dit|attention'" tools/cmake_build.sh     # a subset of tests
#
# JOBS defaults to 1 (the CI machine's 2 cores are shared). ctest skips the
# tests Bazel tags "manual" (benchmarks, GPU-only); the e2e suite runs, as
# under `bazel test //...`.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
jobs=${JOBS:-1}
start=$(date +%s)
python3 tools/cmake/bazel_to_cmake.py --check
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B "$build" "${generator[@]}" "$@"
nice -n 10 cmake --build "$build" -j "$jobs"
echo "cmake_build: built in $(( $(date +%s) - start )) s"
eval "ctest --test-dir \"$build\" --output-on-failure -LE 'manual|gpu' ${CTEST_ARGS:-}"
echo "cmake_build: finished in $(( $(date +%s) - start )) s"
