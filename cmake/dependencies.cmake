# Third-party libraries as INTERFACE targets named after //third_party:<x>
# (dserve_tp_<x>), so cmake/targets.cmake can mirror the Bazel deps 1:1.
#
# LibTorch: find_package(Torch) when Torch_DIR or CMAKE_PREFIX_PATH points at
# a LibTorch CMake package (the GPU image's PyTorch:
#   -DTorch_DIR=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')/Torch),
# else Debian's libtorch-dev in /usr (CPU, LibTorch 1.13).
# Everything else comes from the system (Debian 12 packages), or from
# DSERVE_DEPS_PREFIX (a folder with include/ and lib/, e.g. the one
# tools/gpu/pack_deps.sh makes for a machine that lacks them).

set(DSERVE_DEPS_PREFIX "" CACHE PATH
    "Optional prefix (include/, lib/) searched first for absl, gtest, spdlog, fmt, png, json")
if(DSERVE_DEPS_PREFIX)
  list(PREPEND CMAKE_PREFIX_PATH "${DSERVE_DEPS_PREFIX}")
  include_directories(BEFORE SYSTEM "${DSERVE_DEPS_PREFIX}/include")
  link_directories("${DSERVE_DEPS_PREFIX}/lib")
  set(CMAKE_BUILD_RPATH "${DSERVE_DEPS_PREFIX}/lib")
endif()

# ---- LibTorch --------------------------------------------------------------
add_library(dserve_tp_torch INTERFACE)
if(Torch_DIR OR DEFINED ENV{Torch_DIR})
  find_package(Torch REQUIRED)
  target_link_libraries(dserve_tp_torch INTERFACE ${TORCH_LIBRARIES})
  target_include_directories(dserve_tp_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
  # TORCH_CXX_FLAGS carries -D_GLIBCXX_USE_CXX11_ABI=<0|1> of that build.
  separate_arguments(_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  target_compile_options(dserve_tp_torch INTERFACE ${_torch_flags})
  set(DSERVE_TORCH_FROM "find_package(Torch) ${Torch_DIR}")
  # A CUDA LibTorch (as DSERVE_TORCH_CUDA in //third_party/torch): the
  # worker reads GPU memory and streams through c10_cuda.
  if(TARGET c10_cuda)
    target_compile_definitions(dserve_tp_torch INTERFACE DSERVE_TORCH_CUDA)
    set(DSERVE_TORCH_FROM "${DSERVE_TORCH_FROM} (CUDA)")
  endif()
else()
  find_library(DSERVE_TORCH_LIB torch REQUIRED)
  find_library(DSERVE_TORCH_CPU_LIB torch_cpu REQUIRED)
  find_library(DSERVE_C10_LIB c10 REQUIRED)
  target_link_libraries(dserve_tp_torch INTERFACE
      ${DSERVE_TORCH_LIB} ${DSERVE_TORCH_CPU_LIB} ${DSERVE_C10_LIB} Threads::Threads)
  target_include_directories(dserve_tp_torch SYSTEM INTERFACE
      /usr/include/torch/csrc/api/include)
  set(DSERVE_TORCH_FROM "Debian libtorch-dev (/usr)")
endif()
# c10d's Gloo backend (Gloo communicator) needs this in every includer, as
# //third_party:torch sets it for Bazel.
target_compile_definitions(dserve_tp_torch INTERFACE USE_C10D_GLOO)
if(DSERVE_WITH_CUDA)
  target_compile_definitions(dserve_tp_torch INTERFACE USE_C10D_NCCL DSERVE_WITH_CUDA)
endif()
message(STATUS "dserve: LibTorch from ${DSERVE_TORCH_FROM}")

# ---- abseil (one umbrella target, like //third_party:absl) ----------------
find_package(absl CONFIG QUIET)
add_library(dserve_tp_absl INTERFACE)
if(absl_FOUND)
  target_link_libraries(dserve_tp_absl INTERFACE
      absl::status absl::statusor absl::strings absl::str_format absl::flags
      absl::flags_parse absl::flags_usage absl::synchronization absl::time
      absl::random_random absl::hash absl::flat_hash_map absl::flat_hash_set
      absl::node_hash_map absl::btree absl::log_severity absl::cord)
else()
  message(FATAL_ERROR "abseil not found (Debian: libabsl-dev; elsewhere set DSERVE_DEPS_PREFIX)")
endif()

# ---- spdlog + fmt ----------------------------------------------------------
find_package(spdlog CONFIG REQUIRED)
add_library(dserve_tp_spdlog INTERFACE)
target_link_libraries(dserve_tp_spdlog INTERFACE spdlog::spdlog)

# ---- GoogleTest ------------------------------------------------------------
find_package(GTest CONFIG REQUIRED)
add_library(dserve_tp_gtest INTERFACE)
target_link_libraries(dserve_tp_gtest INTERFACE GTest::gmock GTest::gtest Threads::Threads)
add_library(dserve_tp_gtest_main INTERFACE)
target_link_libraries(dserve_tp_gtest_main INTERFACE GTest::gmock_main dserve_tp_gtest)

# ---- libpng, nlohmann-json, cpp-httplib ------------------------------------
find_package(PNG REQUIRED)
add_library(dserve_tp_png INTERFACE)
target_link_libraries(dserve_tp_png INTERFACE PNG::PNG)
add_library(dserve_tp_json INTERFACE)  # header-only
# Debian's cpp-httplib is a compiled library, not header-only.
find_library(DSERVE_HTTPLIB_LIB cpp-httplib)
add_library(dserve_tp_httplib INTERFACE)
if(DSERVE_HTTPLIB_LIB)
  target_link_libraries(dserve_tp_httplib INTERFACE ${DSERVE_HTTPLIB_LIB})
endif()
target_link_libraries(dserve_tp_httplib INTERFACE Threads::Threads)

# ---- gRPC + protobuf (server, worker, clients; not the LibTorch-only build) -
if(DSERVE_WITH_GRPC)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(DSERVE_GRPCPP REQUIRED IMPORTED_TARGET grpc++)
  pkg_check_modules(DSERVE_PROTOBUF REQUIRED IMPORTED_TARGET protobuf)
  find_program(DSERVE_PROTOC protoc REQUIRED)
  find_program(DSERVE_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
  find_library(DSERVE_GRPCPP_REFLECTION_LIB grpc++_reflection REQUIRED)
  add_library(dserve_tp_protobuf INTERFACE)
  target_link_libraries(dserve_tp_protobuf INTERFACE PkgConfig::DSERVE_PROTOBUF)
  add_library(dserve_tp_grpc INTERFACE)
  target_link_libraries(dserve_tp_grpc INTERFACE
      PkgConfig::DSERVE_GRPCPP dserve_tp_protobuf dserve_tp_absl Threads::Threads)
  add_library(dserve_tp_grpc_reflection INTERFACE)
  # Registered by a static initialiser: keep it although nothing references it.
  target_link_libraries(dserve_tp_grpc_reflection INTERFACE
      "-Wl,--no-as-needed" ${DSERVE_GRPCPP_REFLECTION_LIB} "-Wl,--as-needed" dserve_tp_grpc)
  # Debian's grpc-proto: health checking and reflection (as @grpc_proto).
  set(DSERVE_GRPC_PROTO_ROOT /usr/share/grpc-proto CACHE PATH "grpc-proto .proto files")
  dserve_cc_proto(dserve_tp_health_cc_proto ROOT ${DSERVE_GRPC_PROTO_ROOT}
      PKG grpc/health/v1 PROTO health.proto)
  dserve_cc_grpc(dserve_tp_health_cc_grpc ROOT ${DSERVE_GRPC_PROTO_ROOT}
      PKG grpc/health/v1 PROTO health.proto DEPS dserve_tp_health_cc_proto)
  dserve_cc_proto(dserve_tp_reflection_cc_proto ROOT ${DSERVE_GRPC_PROTO_ROOT}
      PKG grpc/reflection/v1alpha PROTO reflection.proto)
  dserve_cc_grpc(dserve_tp_reflection_cc_grpc ROOT ${DSERVE_GRPC_PROTO_ROOT}
      PKG grpc/reflection/v1alpha PROTO reflection.proto DEPS dserve_tp_reflection_cc_proto)
endif()

# ---- CUDA runtime + NCCL (parallel/nccl_communicator*) ---------------------
if(DSERVE_WITH_CUDA)
  set(DSERVE_NCCL_HOME "" CACHE PATH "NCCL folder (include/, lib/) if not in the CUDA toolkit")
  set(DSERVE_CUDA_HOME /usr/local/cuda-13.0 CACHE PATH "CUDA toolkit with NCCL")
  find_library(DSERVE_CUDART_LIB cudart HINTS ${DSERVE_CUDA_HOME}/lib64 REQUIRED)
  # NCCL from the CUDA toolkit folder or DSERVE_NCCL_HOME (e.g. the pip wheel
  # nvidia-nccl-cu13's folder, which ships only libnccl.so.2).
  find_library(DSERVE_NCCL_LIB NAMES nccl libnccl.so.2
               HINTS ${DSERVE_NCCL_HOME}/lib ${DSERVE_CUDA_HOME}/lib64 REQUIRED)
  find_path(DSERVE_NCCL_INCLUDE nccl.h HINTS ${DSERVE_NCCL_HOME}/include ${DSERVE_CUDA_HOME}/include REQUIRED)
  add_library(dserve_tp_cuda INTERFACE)
  target_include_directories(dserve_tp_cuda SYSTEM INTERFACE ${DSERVE_CUDA_HOME}/include)
  target_link_libraries(dserve_tp_cuda INTERFACE ${DSERVE_CUDART_LIB})
  add_library(dserve_tp_nccl INTERFACE)
  target_include_directories(dserve_tp_nccl SYSTEM INTERFACE ${DSERVE_NCCL_INCLUDE})
  target_link_libraries(dserve_tp_nccl INTERFACE ${DSERVE_NCCL_LIB} dserve_tp_cuda)
endif()

# SentencePiece: linked only by the umT5 tokenizer's dlopen()ed shim
# (worker/models/text/spm_shim.cc), never into a binary with libprotobuf.
add_library(dserve_tp_sentencepiece INTERFACE)
target_link_libraries(dserve_tp_sentencepiece INTERFACE sentencepiece)

# FFmpeg (Debian libavformat/libavcodec/libswscale/libavutil) for MP4 output.
add_library(dserve_tp_ffmpeg INTERFACE)
target_link_libraries(dserve_tp_ffmpeg INTERFACE avformat avcodec swscale avutil)
