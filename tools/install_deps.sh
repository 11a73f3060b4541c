#!/usr/bin/env bash
# Installs everything dserve needs to build, test and run on Debian 12, from
# Debian's own archive (no other network). Safe to run again: it installs only
# what is missing. Run as root (or with sudo available).
set -euo pipefail

packages=(
  bazel-bootstrap          # Bazel 4.2.3, builds offline with our WORKSPACE
  build-essential
  protobuf-compiler libprotobuf-dev
  protobuf-compiler-grpc libgrpc++-dev grpc-proto
  libabsl-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev
  libtorch-dev libgloo-dev
  libopenblas0-pthread     # LibTorch's BLAS; Debian's reference BLAS is ~30x slower
  libpng-dev nlohmann-json3-dev libcpp-httplib-dev
  procps                   # pgrep/ps used by the end-to-end tests
  openssl                  # the TLS end-to-end test makes its certificates
  python3-torch python3-numpy  # //bench:python_reference_test (independent PyTorch DiT)
  cmake ninja-build        # tools/cmake_build.sh (the CMake mirror of the Bazel build)
  libsentencepiece-dev sentencepiece python3-sentencepiece  # umT5 tokenizer (worker/models/text), its spm_train test model and cross-check
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libx264-dev  # MP4 (H.264) output, worker/video_encoder
  ffmpeg                   # ffprobe, with which the MP4 tests read the videos back
  python3-grpcio python3-protobuf  # clients/python (dserve_client) and its tests
  clang-14 libfuzzer-14-dev libclang-rt-14-dev pkg-config  # fuzz/run_fuzzers.sh (libFuzzer targets, ASan+UBSan; pkg-config finds abseil/protobuf)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# deploy/k8s/check.sh: kubectl (its built-in kustomize renders the overlays)
# and node/npm (the schema validator; also tests/http's OpenAI SDK test). Only when missing: a kubectl from
# another source (e.g. a cloud SDK's) must not be replaced.
k8s_missing=()
command -v kubectl >/dev/null || k8s_missing+=(kubernetes-client)
command -v npm >/dev/null || k8s_missing+=(nodejs npm)
if ((${#k8s_missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${k8s_missing[@]}" >/dev/null
fi

# LibTorch must pick OpenBLAS over the reference BLAS.
if [[ -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ]]; then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 >/dev/null 2>&1 || true
  $SUDO update-alternatives --set liblapack.so.3-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-pthread/liblapack.so.3 >/dev/null 2>&1 || true
fi
echo "install_deps: all dependencies present" >&2
