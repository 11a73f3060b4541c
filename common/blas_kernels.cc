#include "common/blas_kernels.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace dserve::common {
namespace {

constexpr char kCoreTypeVar[] = "OPENBLAS_CORETYPE";

}  // namespace

std::string OpenBlasCoreTypeForThisCpu() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return "Haswell";
  }
#endif
  return "";
}

std::string SetOpenBlasCoreTypeForChildren() {
  if (const char* set = std::getenv(kCoreTypeVar)) return set;
  const std::string core = OpenBlasCoreTypeForThisCpu();
  if (!core.empty()) setenv(kCoreTypeVar, core.c_str(), /*overwrite=*/0);
  return core;
}

std::string CoreTypeToReexecWith() {
  if (std::getenv(kCoreTypeVar) != nullptr) return "";
  const char* opt_out = std::getenv("DSERVE_BLAS_REEXEC");
  if (opt_out != nullptr && std::strcmp(opt_out, "0") == 0) return "";
  return OpenBlasCoreTypeForThisCpu();
}

void ReexecWithOpenBlasCoreType(char** argv) {
  const std::string core = CoreTypeToReexecWith();
  if (core.empty()) return;
  setenv(kCoreTypeVar, core.c_str(), /*overwrite=*/0);
  execv("/proc/self/exe", argv);
  // exec failed: carry on with whatever kernels OpenBLAS chose; the
  // variable stays set so children still get the right ones.
}

}  // namespace dserve::common
