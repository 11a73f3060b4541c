#include "common/blas_kernels.h"

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace dserve::common {
namespace {

TEST(BlasKernelsTest, CoreTypeIsAFamilyOpenBlasKnows) {
  const std::string core = OpenBlasCoreTypeForThisCpu();
  EXPECT_TRUE(core.empty() || core == "SkylakeX" || core == "Haswell") << core;
}

TEST(BlasKernelsTest, NeverOverridesTheUsersChoice) {
  setenv("OPENBLAS_CORETYPE", "Prescott", 1);
  EXPECT_EQ(SetOpenBlasCoreTypeForChildren(), "Prescott");
  EXPECT_STREQ(std::getenv("OPENBLAS_CORETYPE"), "Prescott");
  EXPECT_EQ(CoreTypeToReexecWith(), "") << "already set: no re-exec";
  unsetenv("OPENBLAS_CORETYPE");
}

TEST(BlasKernelsTest, SetsTheDetectedFamilyWhenUnset) {
  unsetenv("OPENBLAS_CORETYPE");
  const std::string expected = OpenBlasCoreTypeForThisCpu();
  EXPECT_EQ(SetOpenBlasCoreTypeForChildren(), expected);
  const char* now = std::getenv("OPENBLAS_CORETYPE");
  if (expected.empty()) {
    EXPECT_EQ(now, nullptr);
  } else {
    ASSERT_NE(now, nullptr);
    EXPECT_EQ(std::string(now), expected);
  }
  unsetenv("OPENBLAS_CORETYPE");
}

TEST(BlasKernelsTest, ReexecsOnlyWhenUnsetAndNotOptedOut) {
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv("DSERVE_BLAS_REEXEC");
  EXPECT_EQ(CoreTypeToReexecWith(), OpenBlasCoreTypeForThisCpu());
  setenv("DSERVE_BLAS_REEXEC", "0", 1);
  EXPECT_EQ(CoreTypeToReexecWith(), "");
  setenv("DSERVE_BLAS_REEXEC", "1", 1);
  EXPECT_EQ(CoreTypeToReexecWith(), OpenBlasCoreTypeForThisCpu());
  unsetenv("DSERVE_BLAS_REEXEC");
}

}  // namespace
}  // namespace dserve::common
