#include "server/job_id.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::server {
namespace {

using ::testing::MatchesRegex;

TEST(JobIdGeneratorTest, ShapeIsPrefixInstanceRandom) {
  JobIdGenerator ids("pod1");
  const std::string id = ids.Next();
  EXPECT_THAT(id, MatchesRegex("j-pod1-[a-z2-7]{12}"));
  EXPECT_EQ(JobIdInstance(id), "pod1");
}

TEST(JobIdGeneratorTest, RandomInstanceIsEightUrlSafeCharacters) {
  JobIdGenerator ids;
  EXPECT_THAT(ids.instance(), MatchesRegex("[a-z2-7]{8}"));
  EXPECT_THAT(ids.Next(), MatchesRegex("j-[a-z2-7]{8}-[a-z2-7]{12}"));
  EXPECT_LE(ids.Next().size(), 23u);
}

TEST(JobIdGeneratorTest, TwoServersNeverShareAnInstanceOrAnId) {
  // What a load balancer needs: ids from different processes (here:
  // generators) differ, and so do many ids from one.
  absl::flat_hash_set<std::string> instances;
  absl::flat_hash_set<std::string> seen;
  for (int server = 0; server < 50; ++server) {
    JobIdGenerator ids;
    EXPECT_TRUE(instances.insert(ids.instance()).second);
    for (int i = 0; i < 2000; ++i) {
      EXPECT_TRUE(seen.insert(ids.Next()).second);
    }
  }
}

TEST(JobIdInstanceTest, OtherShapesHaveNoInstance) {
  EXPECT_EQ(JobIdInstance("j-1"), "");
  EXPECT_EQ(JobIdInstance("x-abc-def"), "");
  EXPECT_EQ(JobIdInstance("j--abc"), "");
  EXPECT_EQ(JobIdInstance("j-AB-cdef"), "");
  EXPECT_EQ(JobIdInstance("j-ab12-cdefgh"), "ab12");
}

}  // namespace
}  // namespace dserve::server
