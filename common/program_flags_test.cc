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

TEST(ProgramFlagsTest, RepeatedFlagValuesInOrderInEverySpelling) {
  const char* args[] = {"prog",       "--model=a=/x", "--model_dir=/no",
                        "-model=b=/y", "--model",     "c=/z",
                        "--models=n", "-model",       "d",
                        "--",         "--model=after"};
  std::vector<char*> argv;
  for (const char* a : args) argv.push_back(const_cast<char*>(a));
  EXPECT_THAT(RepeatedFlagValues(static_cast<int>(argv.size()), argv.data(),
                                 "model"),
              ::testing::ElementsAre("a=/x", "b=/y", "c=/z", "d"));
  EXPECT_TRUE(RepeatedFlagValues(1, argv.data(), "model").empty());
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
