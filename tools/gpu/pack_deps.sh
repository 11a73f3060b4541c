#!/usr/bin/env bash
# Copies the Debian 12 headers, libraries and CMake configs that the GPU image
# lacks (abseil, GoogleTest, spdlog + fmt, libpng + zlib, nlohmann-json) into
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
du -sh "$out"
