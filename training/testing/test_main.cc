// gtest main for the default-model tests: one LibTorch thread, so results
// are reproducible and the suite does not fight other builds for cores.

#include "common/blas_kernels.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  at::set_num_threads(1);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
