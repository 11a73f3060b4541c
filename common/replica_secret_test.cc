#include "common/replica_secret.h"

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::common {
namespace {

TEST(ReplicaSecretTest, NewSecretsAre64HexCharactersAndDiffer) {
  absl::StatusOr<std::string> a = NewReplicaSecret();
  absl::StatusOr<std::string> b = NewReplicaSecret();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT(*a, ::testing::MatchesRegex("[0-9a-f]{64}"));
  EXPECT_NE(*a, *b);
}

TEST(ReplicaSecretTest, SecretsEqualComparesWholeValues) {
  EXPECT_TRUE(SecretsEqual("abc", "abc"));
  EXPECT_TRUE(SecretsEqual("", ""));
  EXPECT_FALSE(SecretsEqual("abc", "abd"));
  EXPECT_FALSE(SecretsEqual("abc", "xbc"));
  EXPECT_FALSE(SecretsEqual("abc", "ab"));
  EXPECT_FALSE(SecretsEqual("", "a"));
}

TEST(ReplicaSecretTest, TakeSecretRemovesItFromTheEnvironment) {
  // (That /proc/PID/environ of a spawned worker no longer shows it is
  // checked end to end in tests/serving/internal_surfaces_e2e_test.)
  ASSERT_EQ(setenv("DSERVE_TEST_SECRET", "s3cr3t-value-1234", 1), 0);
  EXPECT_EQ(TakeSecretFromEnvironment("DSERVE_TEST_SECRET"),
            "s3cr3t-value-1234");
  EXPECT_EQ(std::getenv("DSERVE_TEST_SECRET"), nullptr);
  EXPECT_EQ(TakeSecretFromEnvironment("DSERVE_TEST_SECRET"), "");
}

}  // namespace
}  // namespace dserve::common
