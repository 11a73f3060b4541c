// gtest main for the model tests: pins LibTorch to one intra-op thread so
// the suite is fast and reproducible on a shared 2-core machine.

#include "common/blas_kernels.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  at::set_num_threads(1);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
