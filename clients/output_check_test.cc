#include "clients/output_check.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::clients {
namespace {

using ::testing::HasSubstr;

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }

TEST(CheckOutputPathTest, FileInAWritableDirectoryIsFine) {
  EXPECT_TRUE(CheckOutputPath(TempDir() + "/new.png").ok());
  std::ofstream(TempDir() + "/existing.png") << "x";
  EXPECT_TRUE(CheckOutputPath(TempDir() + "/existing.png").ok());
}

TEST(CheckOutputPathTest, MissingDirectoryIsNamed) {
  const absl::Status s = CheckOutputPath(TempDir() + "/no_such_dir/out.png");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("no_such_dir does not exist"));
}

TEST(CheckOutputPathTest, DirectoryAsOutIsRefused) {
  const absl::Status s = CheckOutputPath(TempDir());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("is a directory"));
}

TEST(CheckOutputPathTest, ParentThatIsAFileIsRefused) {
  std::ofstream(TempDir() + "/plainfile") << "x";
  const absl::Status s = CheckOutputPath(TempDir() + "/plainfile/out.png");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("is not a directory"));
}

TEST(CheckOutputPathTest, ReadOnlyDirectoryIsRefused) {
  if (geteuid() == 0) GTEST_SKIP() << "root may write anywhere";
  const std::string dir = TempDir() + "/readonly";
  mkdir(dir.c_str(), 0555);
  const absl::Status s = CheckOutputPath(dir + "/out.png");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("not writable"));
}

TEST(CheckOutputPathTest, EmptyIsRefused) {
  EXPECT_EQ(CheckOutputPath("").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dserve::clients
