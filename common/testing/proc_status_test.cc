#include "common/testing/proc_status.h"

#include <unistd.h>

#include <memory>

#include "gtest/gtest.h"

namespace dserve::common::testing {
namespace {

TEST(ProcStatusTest, ReadsThisProcessAndSeesItGrow) {
  const int64_t before = ProcStatusKib(0, "VmRSS");
  ASSERT_GT(before, 0);
  EXPECT_EQ(ProcStatusKib(getpid(), "VmRSS") > 0, true);
  // 64 MiB touched page by page shows up in VmRSS.
  constexpr size_t kBytes = 64 << 20;
  std::unique_ptr<char[]> block(new char[kBytes]);
  for (size_t i = 0; i < kBytes; i += 4096) block[i] = static_cast<char>(i);
  EXPECT_GE(ProcStatusKib(0, "VmRSS"), before + 32 * 1024);
  EXPECT_GE(ProcStatusKib(0, "VmHWM"), ProcStatusKib(0, "VmRSS"));
}

TEST(ProcStatusTest, MissingFieldOrProcessIsMinusOne) {
  EXPECT_EQ(ProcStatusKib(0, "NoSuchField"), -1);
  EXPECT_EQ(ProcStatusKib(0, "VmRS"), -1);  // a prefix of a field is not it
  EXPECT_EQ(ProcStatusKib(999999999, "VmRSS"), -1);
}

}  // namespace
}  // namespace dserve::common::testing
