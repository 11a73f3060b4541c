#include "scheduler/worker_process.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::scheduler {
namespace {

using ::testing::HasSubstr;

// bash (not sh): its redirections accept multi-digit descriptors. The
// appended --ready_fd=N becomes $0 of the script.
absl::StatusOr<std::unique_ptr<WorkerProcess>> SpawnScript(
    const std::string& script, bool with_pipe = true) {
  return WorkerProcess::Spawn(
      "/bin/bash", {"-c", absl::StrCat("fd=${0#--ready_fd=}; ", script)},
      with_pipe);
}

// A secret goes to the child in its environment (replacing an inherited
// value of the same name), never on its command line.
TEST(WorkerProcessTest, ExtraEnvironmentReachesTheChildOffItsCommandLine) {
  ASSERT_EQ(setenv("DSERVE_TEST_SPAWN_VAR", "inherited", 1), 0);
  auto process = WorkerProcess::Spawn(
      "/bin/bash",
      {"-c",
       "fd=${0#--ready_fd=}; echo \"$DSERVE_TEST_SPAWN_VAR|$DSERVE_TEST_OTHER|"
       "$(tr '\\0' ' ' < /proc/$$/cmdline)\" >&$fd; sleep 5"},
      /*with_ready_pipe=*/true,
      {"DSERVE_TEST_SPAWN_VAR=s3cret", "DSERVE_TEST_OTHER=two"});
  unsetenv("DSERVE_TEST_SPAWN_VAR");
  ASSERT_TRUE(process.ok()) << process.status();
  absl::StatusOr<std::string> line = (*process)->ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_THAT(*line, ::testing::StartsWith("s3cret|two|/bin/bash -c "));
  EXPECT_THAT(line->substr(11), ::testing::Not(HasSubstr("s3cret")));
  (*process)->Signal(SIGKILL);
  (*process)->WaitFor(absl::Seconds(5));
}

TEST(WorkerProcessTest, ReadsReadyLinesInOrder) {
  auto process = SpawnScript(
      "echo 'store 4242' >&$fd; sleep 0.1; printf 'leader 4' >&$fd; "
      "printf '343\\n' >&$fd; sleep 5");
  ASSERT_TRUE(process.ok()) << process.status();
  EXPECT_EQ(*(*process)->ReadLine(absl::Seconds(10)), "store 4242");
  EXPECT_EQ(*(*process)->ReadLine(absl::Seconds(10)), "leader 4343");
  EXPECT_FALSE((*process)->Poll().has_value());
  (*process)->Signal(SIGKILL);
  EXPECT_THAT(*(*process)->WaitFor(absl::Seconds(5)),
              HasSubstr("killed by signal 9"));
}

TEST(WorkerProcessTest, ChildDyingBeforeReadyIsUnavailable) {
  auto process = SpawnScript("exit 3");
  ASSERT_TRUE(process.ok());
  absl::StatusOr<std::string> line = (*process)->ReadLine(absl::Seconds(10));
  EXPECT_EQ(line.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(line.status().message(), HasSubstr("exited with status 3"));
}

TEST(WorkerProcessTest, SilentChildTimesOut) {
  auto process = SpawnScript("sleep 5");
  ASSERT_TRUE(process.ok());
  absl::StatusOr<std::string> line =
      (*process)->ReadLine(absl::Milliseconds(200));
  EXPECT_EQ(line.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(WorkerProcessTest, WithoutPipeGetsMinusOne) {
  auto process = SpawnScript("[ \"$fd\" = -1 ] && exit 0 || exit 5", false);
  ASSERT_TRUE(process.ok());
  EXPECT_EQ(*(*process)->WaitFor(absl::Seconds(10)), "exited with status 0");
}

TEST(WorkerProcessTest, MissingBinaryFailsToSpawn) {
  auto process = WorkerProcess::Spawn("/nonexistent/dserve_worker", {}, true);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(process.status().message(),
              HasSubstr("cannot execute worker binary /nonexistent/dserve_worker"));
}

TEST(WorkerProcessTest, ChildGetsOwnGroupAndNoInheritedDescriptors) {
  const int leaked = open("/dev/null", O_RDONLY);  // Not O_CLOEXEC.
  ASSERT_GE(leaked, 0);
  auto process = SpawnScript(absl::StrCat(
      "[ -e /proc/$$/fd/", leaked, " ] && exit 9; echo ok >&$fd; sleep 5"));
  close(leaked);
  ASSERT_TRUE(process.ok());
  absl::StatusOr<std::string> line = (*process)->ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line, "ok");
  EXPECT_EQ(getpgid((*process)->pid()), (*process)->pid());
}

TEST(WorkerProcessTest, DestructorKillsAndReaps) {
  pid_t pid;
  {
    auto process = SpawnScript("sleep 30");
    ASSERT_TRUE(process.ok());
    pid = (*process)->pid();
  }
  EXPECT_EQ(kill(pid, 0), -1);  // Gone, and reaped (no zombie).
}

TEST(WorkerProcessTest, DescribeWaitStatus) {
  EXPECT_EQ(DescribeWaitStatus(3 << 8), "exited with status 3");
  EXPECT_THAT(DescribeWaitStatus(SIGSEGV), HasSubstr("killed by signal 11"));
}

}  // namespace
}  // namespace dserve::scheduler
