#include "scheduler/store_dir.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace dserve::scheduler {
namespace {

namespace fs = std::filesystem;

std::string FreshBase(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  fs::path base = fs::path(tmp != nullptr ? tmp : "/tmp") / name;
  fs::remove_all(base);
  fs::create_directories(base);
  return base.string();
}

// The pid of a child that has exited and been reaped: no process has it
// (until the kernel hands it out again, which a test run does not reach).
int DeadPid() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  return child;
}

TEST(StoreDirTest, MakesAPrivateDirNamedForThisProcess) {
  const std::string base = FreshBase("make");
  absl::StatusOr<std::string> dir = MakeReplicaStoreDir(base, 3);
  ASSERT_TRUE(dir.ok()) << dir.status();
  const std::string name = fs::path(*dir).filename().string();
  EXPECT_EQ(name.rfind(absl::StrCat("dserve-replica3-p", getpid(), "-"), 0),
            0u)
      << name;
  EXPECT_EQ(StoreDirOwnerPid(name), getpid());
  struct stat st;
  ASSERT_EQ(stat(dir->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
}

TEST(StoreDirTest, MissingBaseIsAnErrorNamingIt) {
  absl::StatusOr<std::string> dir =
      MakeReplicaStoreDir("/nonexistent-dserve-base", 0);
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("/nonexistent-dserve-base"),
            std::string::npos)
      << dir.status();
}

TEST(StoreDirTest, OwnerPidParsesOnlyItsOwnNames) {
  EXPECT_EQ(StoreDirOwnerPid("dserve-replica0-p1234-aBc123"), 1234);
  EXPECT_EQ(StoreDirOwnerPid("dserve-replica12-p7-zzzzzz"), 7);
  // Older servers' names carry no pid: never removed.
  EXPECT_EQ(StoreDirOwnerPid("dserve-replica0-aBc123"), -1);
  EXPECT_EQ(StoreDirOwnerPid("dserve-replica0-p-aBc123"), -1);
  EXPECT_EQ(StoreDirOwnerPid("dserve-replica0-p12x-aBc123"), -1);
  EXPECT_EQ(StoreDirOwnerPid("dserve-replica0-p12-abc"), -1);
  EXPECT_EQ(StoreDirOwnerPid("dserve-replica0-p0-aBc123"), -1);
  EXPECT_EQ(StoreDirOwnerPid("dserve-replica-p12-aBc123"), -1);
  EXPECT_EQ(StoreDirOwnerPid("other-replica0-p12-aBc123"), -1);
  EXPECT_EQ(StoreDirOwnerPid("dserve-replica0-p99999999999999-aBc123"), -1);
}

TEST(StoreDirTest, RemovesOnlyDirectoriesOfDeadServers) {
  const std::string base = FreshBase("sweep");
  const int dead = DeadPid();
  const fs::path stale =
      fs::path(base) / absl::StrCat("dserve-replica0-p", dead, "-AbCdEf");
  fs::create_directories(stale);
  std::ofstream(stale / "store") << "keys";
  const fs::path stale2 =
      fs::path(base) / absl::StrCat("dserve-replica1-p", dead, "-ZyXwVu");
  fs::create_directories(stale2);
  absl::StatusOr<std::string> mine = MakeReplicaStoreDir(base, 0);
  ASSERT_TRUE(mine.ok()) << mine.status();
  const fs::path old_format = fs::path(base) / "dserve-replica0-q1w2e3";
  fs::create_directories(old_format);
  const fs::path other = fs::path(base) / "unrelated";
  fs::create_directories(other);
  // A file (not a directory) with a stale-looking name is not touched.
  const fs::path file =
      fs::path(base) / absl::StrCat("dserve-replica2-p", dead, "-FiLe12");
  std::ofstream(file) << "x";

  EXPECT_EQ(RemoveStaleReplicaStoreDirs(base), 2);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_FALSE(fs::exists(stale2));
  EXPECT_TRUE(fs::exists(*mine));
  EXPECT_TRUE(fs::exists(old_format));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_TRUE(fs::exists(file));
  // Idempotent.
  EXPECT_EQ(RemoveStaleReplicaStoreDirs(base), 0);
}

TEST(StoreDirTest, MissingBaseRemovesNothing) {
  EXPECT_EQ(RemoveStaleReplicaStoreDirs("/nonexistent-dserve-base"), 0);
}

}  // namespace
}  // namespace dserve::scheduler
