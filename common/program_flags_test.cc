#include "common/program_flags.h"

#include "common/build_info.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::common {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

TEST(ProgramFlagsTest, OwnSourcesAreListedAbslPlumbingIsNot) {
  EXPECT_TRUE(IsProgramFlagFile("server/main.cc"));
  EXPECT_TRUE(IsProgramFlagFile("clients/dserve_cli.cc"));
  EXPECT_FALSE(IsProgramFlagFile("/build/abseil/absl/flags/parse.cc"));
  EXPECT_FALSE(IsProgramFlagFile("absl/flags/internal/usage.cc"));
}

TEST(BuildInfoTest, VersionLineNamesProgramVersionAndBuild) {
  const std::string line = VersionLine("dserve_server");
  EXPECT_THAT(line, HasSubstr("dserve_server 0.1.0 (build "));
  EXPECT_THAT(line, MatchesRegex(".*(gcc|clang) [0-9]+\\.[0-9]+\\.[0-9]+, "
                                 "(opt|dbg)\\)"));
  EXPECT_EQ(GetBuildInfo().version, kDserveVersion);
}

}  // namespace
}  // namespace dserve::common
