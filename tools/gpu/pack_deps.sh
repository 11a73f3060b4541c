#!/usr/bin/env bash
# Copies the Debian 12 headers, libraries and CMake configs that the GPU image
# lacks (abseil, GoogleTest, spdlog + fmt, libpng + zlib, nlohmann-json, and
# gRPC + protobuf unless --no_grpc) into
# build/gpu_deps (ignored by git, < 64 MiB), laid out like /usr so their CMake
# config files resolve relative to it. The device tool carries it:
#   bash tools/gpu/pack_deps.sh        # here, before the run
#   run(carry=["build/gpu_deps"], command="bash tools/gpu/run_all.sh")
# run_all.sh passes -DDSERVE_DEPS_PREFIX=build/gpu_deps and puts its lib/ on
# LD_LIBRARY_PATH. Both machines are x86-64 with glibc >= 2.36.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/gpu_deps
arch=x86_64-linux-gnu
rm -rf "$out"
mkdir -p "$out/include" "$out/lib/$arch/cmake"
for h in absl gtest gmock spdlog fmt nlohmann png.h pngconf.h pnglibconf.h \
         libpng16 zlib.h zconf.h; do
  cp -a "/usr/include/$h" "$out/include/"
done
cp -a /usr/include/$arch/zconf.h "$out/include/" 2>/dev/null || true
for pattern in 'libabsl_*.so*' 'libgtest*.a' 'libgmock*.a' 'libgtest*.so*' 'libgmock*.so*' 'libspdlog.so*' \
               'libfmt.so*' 'libpng16.so*' 'libpng.so' 'libz.so*'; do
  # shellcheck disable=SC2086
  cp -a /usr/lib/$arch/$pattern "$out/lib/$arch/" 2>/dev/null || true
done
for cfg in absl GTest spdlog fmt; do
  cp -a "/usr/lib/$arch/cmake/$cfg" "$out/lib/$arch/cmake/"
done

# gRPC C++ + protobuf (issue 12: the server, worker and CLI on the GPU
# machine), ~20 MiB: headers, shared libraries, protoc, grpc_cpp_plugin and
# the pkg-config files cmake/dependencies.cmake reads. Their .pc files say
# prefix=/usr; run_all.sh rewrites it to where build/gpu_deps lands there.
# Skip with --no_grpc (LibTorch-only build, as before).
if [[ ${1:-} != --no_grpc ]]; then
  mkdir -p "$out/bin" "$out/lib/pkgconfig" "$out/include/google"
  for h in grpc grpc++ grpcpp; do cp -a "/usr/include/$h" "$out/include/"; done
  cp -a /usr/include/google/protobuf "$out/include/google/"
  cp -aL /usr/bin/protoc /usr/bin/grpc_cpp_plugin "$out/bin/"
  for pattern in 'libgrpc*.so*' 'libgpr.so*' 'libprotobuf.so*' 'libprotoc.so*' \
                 'libupb.so*' 'libaddress_sorting.so*' 'libre2.so*' 'libcares.so*' \
                 'libssl.so*' 'libcrypto.so*'; do
    # shellcheck disable=SC2086
    cp -a /usr/lib/$arch/$pattern "$out/lib/" 2>/dev/null || true
  done
  for pc in grpc grpc++ grpc_unsecure grpc++_unsecure gpr protobuf openssl \
            libssl libcrypto zlib libcares re2 upb 'absl_*'; do
    # shellcheck disable=SC2086
    cp -a /usr/lib/$arch/pkgconfig/$pc.pc "$out/lib/pkgconfig/" 2>/dev/null || true
  done
  cp -a /usr/lib/$arch/libz.so* "$out/lib/" 2>/dev/null || true
fi
du -sh "$out"
