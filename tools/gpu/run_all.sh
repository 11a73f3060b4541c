#!/usr/bin/env bash
# The GPU runs of issue 6, for a machine with CUDA, PyTorch (LibTorch + its
# CMake package), CMake and ninja but no Bazel and no gRPC C++ (the device
# tool's H100/H200 image). See tools/gpu/README.md.
#
#   bash tools/gpu/run_all.sh STAGE...     stages, in order:
#     info       device, driver, PyTorch, compilers
#     build      CMake, LibTorch-only (DSERVE_WITH_GRPC=OFF) + CUDA/NCCL
#     unit       model/parallel unit tests and the CPU reference test (ctest)
#     nccl       parallel/nccl_communicator_test (NCCL, world size 1)
#     bench      step_bench: Wan2.1-1.3B 480x832x81 and the default model
#     reference  C++ vs Python DiT on CUDA: bf16 1.3B, fp32 default model
#     shard      shard_bench: predicted speedups at 2/4/8 GPUs
#   all = every stage. Logs go to $OUT (the device tool's result folder) or
#   build-gpu/logs.
#
# Needs build/gpu_deps (tools/gpu/pack_deps.sh, carried) for abseil, gtest,
# spdlog, fmt, libpng and nlohmann-json.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=$root/build-gpu
logs=${OUT:-$build/logs}
mkdir -p "$logs"
deps=$root/build/gpu_deps
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
bin=$build/runfiles/dserve
py=python3
stages=("$@")
[[ ${#stages[@]} -eq 0 || ${stages[0]} == all ]] &&
  stages=(info build unit nccl bench reference shard)

run() {  # run NAME CMD...: log to $logs/NAME.log, report the status
  local name=$1; shift
  echo "=== $name: $*"
  local start=$(date +%s)
  "$@" 2>&1 | tee "$logs/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: rc=$rc in $(( $(date +%s) - start )) s"
  return "$rc"
}

for stage in "${stages[@]}"; do
  case $stage in
  info)
    run info bash -c 'date -u; nvidia-smi; python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"; cmake --version | head -1; c++ --version | head -1; nproc'
    ;;
  build)
    [[ -d $deps ]] || { echo "missing $deps: run tools/gpu/pack_deps.sh here and carry build/gpu_deps"; exit 1; }
    torch_dir=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch
    nccl_home=$($py -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null || true)
    cuda_home=$(dirname "$(dirname "$(command -v nvcc)")")
    run configure cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DTorch_DIR="$torch_dir" -DDSERVE_WITH_GRPC=OFF -DDSERVE_WITH_CUDA=ON \
        -DDSERVE_CUDA_HOME="$cuda_home" -DDSERVE_NCCL_HOME="$nccl_home" \
        -DDSERVE_DEPS_PREFIX="$deps" -DCMAKE_CUDA_ARCHITECTURES=90 || exit 1
    run build cmake --build "$build" -j "$(nproc)" -- -k 0 || exit 1
    ;;
  unit)
    run unit ctest --test-dir "$build" --output-on-failure -LE 'manual|gpu' \
        -R 'worker/models|bench|parallel' --timeout 600
    ;;
  nccl)
    run nccl "$bin/parallel/nccl_communicator_test"
    ;;
  bench)
    run bench_wan13b "$bin/bench/step_bench" --model=wan1.3b --device=cuda \
        --dtype=bf16 --frames=81 --height=480 --width=832 --warmup=2 --repeats=5
    run bench_default "$bin/bench/step_bench" --model=default --device=cuda \
        --dtype=bf16 --frames=1 --height=256 --width=256 --warmup=3 --repeats=20
    ;;
  reference)
    ref=$build/ref_wan13b
    mkdir -p "$ref"
    run ref_wan13b_cpp "$bin/bench/dit_reference_io" --out_dir="$ref" \
        --model=wan1.3b --device=cuda --dtype=bf16 --frames=81 --height=480 \
        --width=832 --repeats=5
    run ref_wan13b_py $py tools/reference/wan_dit_reference.py --dir="$ref" \
        --device=cuda --tol=3e-2 --repeats=5
    ref=$build/ref_default
    mkdir -p "$ref"
    run ref_default_cpp "$bin/bench/dit_reference_io" --out_dir="$ref" \
        --model=default --device=cuda --dtype=fp32 --frames=1 --height=256 \
        --width=256 --repeats=10
    run ref_default_py $py tools/reference/wan_dit_reference.py --dir="$ref" \
        --device=cuda --tol=1e-4 --repeats=10
    ;;
  shard)
    run shard_wan13b "$bin/bench/shard_bench" --model=wan1.3b --device=cuda \
        --dtype=bf16 --frames=81 --height=480 --width=832 --repeats=3 \
        --link_gbps=350
    ;;
  *)
    echo "unknown stage $stage"; exit 2 ;;
  esac
done
