#ifndef DSERVE_COMMON_BLAS_KERNELS_H_
#define DSERVE_COMMON_BLAS_KERNELS_H_

// OpenBLAS picks its GEMM kernels once, when the library loads, from the
// CPU's model number. On CPUs it does not recognise (new Xeons, most cloud
// VMs that report "Intel(R) Xeon(R) Processor") Debian's OpenBLAS 0.3.21
// falls back to its SSE3 "Prescott" kernels, 3x slower than the AVX-512
// ones on the same machine (measured on the trainer: 1.03 s vs 0.34 s per
// step). The environment variable OPENBLAS_CORETYPE overrides the choice,
// but only if it is set before the library loads. These helpers set it
// from the CPU's feature flags (cpuid), never over a value the user set.

#include <string>

namespace dserve::common {

// The OpenBLAS core type whose kernels this CPU can run: "SkylakeX" with
// AVX-512 F/DQ/BW/VL, "Haswell" with AVX2 + FMA, else "" (leave OpenBLAS
// to decide).
std::string OpenBlasCoreTypeForThisCpu();

// Sets OPENBLAS_CORETYPE for this process's future children when it is
// unset and the CPU has a better kernel family. Call before starting
// threads (setenv is not thread-safe). Returns the value now in effect
// ("" when unset).
std::string SetOpenBlasCoreTypeForChildren();

// What ReexecWithOpenBlasCoreType would set before re-executing: "" when
// OPENBLAS_CORETYPE is already set, DSERVE_BLAS_REEXEC=0, or the CPU has no
// better kernel family (then no re-exec happens). Reads only the
// environment and cpuid.
std::string CoreTypeToReexecWith();

// For binaries that load OpenBLAS themselves (through LibTorch): when
// OPENBLAS_CORETYPE is unset and the CPU has a better kernel family, sets
// it and re-executes this binary (/proc/self/exe) with the same argv, so
// the library loads again with the right kernels. Returns (without
// re-executing) when the variable is already set, the CPU has nothing
// better, DSERVE_BLAS_REEXEC=0, or exec fails. Call first thing in main.
void ReexecWithOpenBlasCoreType(char** argv);

}  // namespace dserve::common

#endif  // DSERVE_COMMON_BLAS_KERNELS_H_
