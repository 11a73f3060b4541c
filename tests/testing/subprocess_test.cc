#include "tests/testing/subprocess.h"

#include <signal.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {
namespace {

using ::testing::HasSubstr;

TEST(RunAndCaptureTest, CapturesOutputAndExitCode) {
  absl::StatusOr<CapturedRun> run = RunAndCapture(
      {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, absl::Seconds(10));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 3);
  EXPECT_EQ(run->stdout_text, "out\n");
  EXPECT_EQ(run->stderr_text, "err\n");
}

TEST(RunAndCaptureTest, TimeoutIsDeadlineExceeded) {
  absl::StatusOr<CapturedRun> run =
      RunAndCapture({"/bin/sleep", "30"}, absl::Milliseconds(200));
  EXPECT_EQ(run.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(SubprocessTest, SignalEndsChildAndIsReported) {
  auto child = Subprocess::Start({"/bin/sleep", "30"});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_TRUE((*child)->running());
  EXPECT_FALSE((*child)->Poll());
  ASSERT_TRUE((*child)->Signal(SIGKILL).ok());
  absl::StatusOr<int> code = (*child)->Wait(absl::Seconds(10));
  ASSERT_FALSE(code.ok());
  EXPECT_THAT(std::string(code.status().message()), HasSubstr("signal 9"));
  EXPECT_FALSE((*child)->running());
  EXPECT_FALSE((*child)->Signal(SIGTERM).ok());
}

TEST(SubprocessTest, DestructorKillsGrandchildren) {
  // The shell starts a grandchild in the same process group and prints its
  // pid; destroying the Subprocess must take it down too.
  const std::string pid_file = TestTempDir() + "/grandchild.pid";
  {
    auto child = Subprocess::Start(
        {"/bin/sh", "-c", "sleep 30 & echo $! > " + pid_file + "; wait"});
    ASSERT_TRUE(child.ok()) << child.status();
    absl::SleepFor(absl::Milliseconds(300));
  }
  absl::StatusOr<CapturedRun> check = RunAndCapture(
      {"/bin/sh", "-c",
       "for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 $(cat " + pid_file +
           ") 2>/dev/null || exit 0; sleep 0.1; done; exit 1"},
      absl::Seconds(10));
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->exit_code, 0) << "grandchild still alive";
}

TEST(SubprocessTest, MissingBinaryExits127) {
  auto child = Subprocess::Start({"/no/such/binary"});
  ASSERT_TRUE(child.ok()) << child.status();
  absl::StatusOr<int> code = (*child)->Wait(absl::Seconds(10));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 127);
}

TEST(RunfilePathTest, FindsOwnDataAndNamesMissingFiles) {
  absl::StatusOr<std::string> missing = RunfilePath("no/such/file");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("no/such/file"));
}

TEST(PickFreePortTest, GivesBindablePort) {
  absl::StatusOr<int> port = PickFreePort();
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_GT(*port, 0);
  EXPECT_LT(*port, 65536);
}

}  // namespace
}  // namespace dserve::tests
