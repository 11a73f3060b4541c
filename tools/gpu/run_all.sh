#!/usr/bin/env bash
# The GPU runs of issue 12 ("Ranks on GPUs"), for the device tool's H100/H200
# image (CUDA 13, PyTorch with its LibTorch + CMake package, CMake, ninja; no
# Bazel, no gRPC C++: both come from build/gpu_deps, see pack_deps.sh).
# See tools/gpu/README.md for the two calls and how to read the results.
#
#   bash tools/gpu/run_all.sh [--cpu_dry_run] STAGE...
#     info         device, driver, PyTorch, compilers
#     build        CMake (+gRPC when packed) + CUDA/NCCL, the targets below
#     unit         unit tests of models/parallel/worker on the GPU machine
#     nccl         parallel/nccl_communicator_test (NCCL, world size 1)
#     equivalence  every parallel layout on cuda:0 in bf16, ranks sharing the
#                  GPU over host-staged Gloo, vs the 1-rank bf16 run (<= 3e-2)
#     bench        step_bench at Wan2.1-1.3B 480x832x81 (CFG, bf16): step time,
#                  TFLOP/s, MFU vs a bf16 matmul measured in the same run
#     reference    C++ vs PyTorch eager on the same GPU (Wan 1.3B bf16):
#                  max|d|/max|ref| and the C++/eager step-time ratio
#     server       dserve_server --devices=cuda:0,cuda:0 --replicas=2, 20 CLI
#                  requests: p50/p90 latency, GPU memory (/metrics)
#     shard        shard_bench: predicted Ulysses/Ring/USP/CFG/PP speedups at
#                  2/4/8 GPUs (compare xDiT's 2.06x / 3.70x / 5.64x)
#   gpu = nccl unit bench equivalence server reference shard (the 2nd call)
#
# Every stage runs under a time cap (below), and a stage that cannot finish
# before --deadline_s (default 530 s after the start) is skipped and noted,
# so the call returns its logs inside the device tool's 10-minute limit.
#
# --cpu_dry_run runs every stage that can run without a GPU here, on the
# CPU, at tiny shapes, against the Bazel binaries (bazel-bin/): it checks the
# commands, flags and log parsing, not the GPU. Stages that need CUDA or
# CMake say so and are skipped.
#
# Logs (at most 8 files come back from the device tool): $OUT/build.log,
# $OUT/unit.log, $OUT/run.log (every other stage) and $OUT/gpu_md.txt, the
# entry for docs/gpu.md (figures with command, device and date).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

dry=0
deadline_s=530  # the 2nd call's timeout_s (540) minus a margin
stages=()
for a in "$@"; do
  case $a in
    --cpu_dry_run) dry=1 ;;
    --deadline_s=*) deadline_s=${a#--deadline_s=} ;;
    *) stages+=("$a") ;;
  esac
done
t0=$(date +%s)
[[ ${#stages[@]} -eq 0 ]] && stages=(gpu)
expanded=()
for s in "${stages[@]}"; do
  case $s in
    # Most important first: a stage that would pass the deadline is skipped.
    gpu) expanded+=(nccl unit bench equivalence server reference shard) ;;
    all) expanded+=(info build unit nccl equivalence bench reference server shard) ;;
    *) expanded+=("$s") ;;
  esac
done

build=$root/build-gpu
deps=$root/build/gpu_deps
logs=${OUT:-$build/logs}
mkdir -p "$logs"
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:$deps/lib:${LD_LIBRARY_PATH:-}
py=python3
if (( dry )); then
  # Bazel layout and the CPU: tiny shapes, same commands.
  bin=$root/bazel-bin
  dev=cpu; dev0=cpu; devices=cpu,cpu; bf16=bf16
  wan_shape=(--layers=2 --frames=5 --height=32 --width=32)
  py=/usr/bin/python3
else
  bin=$build/runfiles/dserve
  dev=cuda; dev0=cuda:0; devices=cuda:0,cuda:0; bf16=bf16
  wan_shape=(--frames=81 --height=480 --width=832)
fi
md=$logs/gpu_md.txt
device_name=$( (( dry )) && echo "CPU dry run ($(nproc) cores)" ||
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
printf '### %s, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "${device_name:-unknown device}" >>"$md"

cap=600  # seconds the current stage's commands may take (set per stage)
run() {  # run LOG NAME CMD...: append to $logs/LOG.log, report the status
  local log=$1 name=$2; shift 2
  echo "=== $name: $*" | tee -a "$logs/$log.log"
  local start=$(date +%s)
  timeout -k 5 "$cap" "$@" 2>&1 | tee -a "$logs/$log.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: rc=$rc in $(( $(date +%s) - start )) s" | tee -a "$logs/$log.log"
  printf -- '- `%s` (%s): rc=%s, %s s\n' "$name" "$*" "$rc" "$(( $(date +%s) - start ))" >>"$md"
  return "$rc"
}

note() { printf '%s\n' "$*" >>"$md"; }

needs_gpu() {  # needs_gpu STAGE: true (skip) in a dry run
  if (( dry )); then
    echo "=== $1: skipped in --cpu_dry_run (needs $2)"; note "- $1: skipped (dry run: needs $2)"
    return 0
  fi
  return 1
}

# Targets the stages use; building only these keeps the build call short.
gpu_targets=(
  parallel__nccl_communicator_test parallel__host_staging_communicator_test
  parallel__devices_test worker__device_runtime_test worker__mesh_backend_test
  tests__parallel_equivalence_cuda_test bench__step_bench bench__shard_bench
  bench__dit_reference_io worker_models__attention_test worker_models__dit_test
)
grpc_targets=(server__dserve_server worker__dserve_worker clients__dserve)

declare -A stage_cap=([info]=60 [build]=590 [unit]=120 [nccl]=60
  [equivalence]=150 [bench]=120 [reference]=150 [server]=120 [shard]=120)
for stage in "${expanded[@]}"; do
  cap=${stage_cap[$stage]:-120}
  left=$(( deadline_s - ($(date +%s) - t0) ))
  if [[ $stage != build && $stage != info ]] && (( left < cap / 2 )); then
    echo "=== $stage: skipped, ${left} s left before --deadline_s=$deadline_s"
    note "- $stage: skipped (out of time: ${left} s left); run it in the next call"
    continue
  fi
  if [[ $stage != build ]] && (( left < cap )); then cap=$left; fi
  case $stage in
  info)
    needs_gpu info "nvidia-smi" && continue
    run run info bash -c 'date -u; nvidia-smi; python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"; cmake --version | head -1; c++ --version | head -1; nproc'
    ;;
  build)
    needs_gpu build "CMake against the GPU image's CUDA LibTorch" && continue
    [[ -d $deps ]] || { echo "missing $deps: run tools/gpu/pack_deps.sh here and carry build/gpu_deps"; exit 1; }
    torch_dir=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch
    nccl_home=$($py -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null || true)
    cuda_home=$(dirname "$(dirname "$(command -v nvcc)")")
    with_grpc=OFF; targets=("${gpu_targets[@]}")
    if [[ -x $deps/bin/protoc && -x $deps/bin/grpc_cpp_plugin ]]; then
      # Debian's .pc files say prefix=/usr: point them at the carried copy.
      sed -i "s|^prefix=.*|prefix=$deps|" "$deps"/lib/pkgconfig/*.pc
      export PKG_CONFIG_PATH=$deps/lib/pkgconfig PATH=$deps/bin:$PATH
      with_grpc=ON; targets+=("${grpc_targets[@]}")
    fi
    run build configure cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DTorch_DIR="$torch_dir" -DDSERVE_WITH_GRPC=$with_grpc -DDSERVE_WITH_CUDA=ON \
        -DDSERVE_CUDA_HOME="$cuda_home" -DDSERVE_NCCL_HOME="$nccl_home" \
        -DDSERVE_DEPS_PREFIX="$deps" -DCMAKE_CUDA_ARCHITECTURES=90 || exit 1
    run build build cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" -- -k 0 || exit 1
    ;;
  unit)
    if (( dry )); then
      run unit unit bazel test //parallel:devices_test //parallel:host_staging_communicator_test \
          //worker:device_runtime_test //worker:mesh_backend_test
    else
      run unit unit ctest --test-dir "$build" --output-on-failure -j 8 --timeout 300 \
          -R 'devices_test|host_staging|device_runtime|mesh_backend|attention_test|dit_test'
    fi
    ;;
  nccl)
    needs_gpu nccl "a GPU and NCCL" && continue
    run run nccl "$bin/parallel/nccl_communicator_test"
    ;;
  equivalence)
    if (( dry )); then
      # The CUDA binary skips every layout without a GPU; the CPU one runs
      # the same code at fp32 (two layouts here, every layout in CI).
      run run equivalence "$bin/tests/parallel_equivalence_test" \
          --gtest_filter='*/cfg_2_24x16:*/ulysses_2_24x16'
    else
      # Four gtest shards at once (16 cores, the ranks share the GPU).
      run run equivalence bash -c 'for i in 0 1 2 3; do
          GTEST_TOTAL_SHARDS=4 GTEST_SHARD_INDEX=$i "$0" >"$1.$i" 2>&1 & done
        rc=0; for i in 0 1 2 3; do wait -n || rc=1; done
        cat "$1".[0-3]; grep -h -E "^\[  (PASSED|FAILED|SKIPPED) " "$1".[0-3]; exit $rc' \
          "$bin/tests/parallel_equivalence_cuda_test" "$build/equivalence.log"
    fi
    grep -h '^equivalence ' "$logs/run.log" | sort -u | sed 's/^/    /' >>"$md"
    ;;
  bench)
    run run bench_wan13b "$bin/bench/step_bench" --model=wan1.3b --device=$dev \
        --dtype=$bf16 "${wan_shape[@]}" --warmup=2 --repeats=5 $( ((dry)) && echo --peak_n=512)
    grep -h -E '^(step|flops/step|achieved)' "$logs/run.log" | tail -3 | sed 's/^/    /' >>"$md"
    ;;
  reference)
    ref=$build/ref_wan13b
    mkdir -p "$ref"
    run run ref_wan13b_cpp "$bin/bench/dit_reference_io" --out_dir="$ref" \
        --model=wan1.3b --device=$dev --dtype=$bf16 "${wan_shape[@]}" --repeats=3 &&
    run run ref_wan13b_py $py tools/reference/wan_dit_reference.py --dir="$ref" \
        --device=$dev --tol=3e-2 --repeats=3
    awk '/^=== ref_wan13b_cpp: \//{n=NR} {l[NR]=$0} END{for(i=n+1;i<=NR;i++) if (l[i] ~ /^(C\+\+ step|forward:|step:|step time)/) print "    " l[i]}' \
        "$logs/run.log" >>"$md"
    ;;
  server)
    bash tools/gpu/server_e2e.sh "$bin" "$devices" 20 "$logs" "$md" $( ((dry)) && echo --cpu_dry_run) 2>&1 |
      tee -a "$logs/run.log"
    ;;
  shard)
    run run shard_wan13b "$bin/bench/shard_bench" --model=wan1.3b --device=$dev \
        --dtype=$bf16 "${wan_shape[@]}" --repeats=2 --link_gbps=350
    note "    xDiT (HunyuanVideo 1280x720, H100): 2.06x at 2, 3.70x at 4, 5.64x at 8 GPUs"
    awk '/^=== shard_wan13b: \//{n=NR} {l[NR]=$0} END{for(i=n+1;i<=NR;i++) if (l[i] ~ /^(1 GPU|mode |ulysses|ring|usp|cfg|pp)/) print "    " l[i]}' \
        "$logs/run.log" >>"$md"
    ;;
  *)
    echo "unknown stage $stage"; exit 2 ;;
  esac
done
echo "=== docs/gpu.md entry: $md"
cat "$md"
