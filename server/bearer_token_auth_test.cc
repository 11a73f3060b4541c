#include "server/bearer_token_auth.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

TEST(BearerTokenAuthTest, Table) {
  const BearerTokenAuth auth("s3cret");
  struct Case {
    const char* name;
    Metadata metadata;
    absl::StatusCode want;
  };
  const Case cases[] = {
      {"right token", {{"authorization", "Bearer s3cret"}}, absl::StatusCode::kOk},
      {"no metadata", {}, absl::StatusCode::kUnauthenticated},
      {"wrong token", {{"authorization", "Bearer s3cre7"}},
       absl::StatusCode::kUnauthenticated},
      {"prefix of the token", {{"authorization", "Bearer s3cr"}},
       absl::StatusCode::kUnauthenticated},
      {"scheme in lower case", {{"authorization", "bearer s3cret"}},
       absl::StatusCode::kOk},
      {"scheme in upper case", {{"authorization", "BEARER s3cret"}},
       absl::StatusCode::kOk},
      {"token case matters", {{"authorization", "Bearer S3CRET"}},
       absl::StatusCode::kUnauthenticated},
      {"no Bearer scheme", {{"authorization", "s3cret"}},
       absl::StatusCode::kUnauthenticated},
      {"other header", {{"x-token", "Bearer s3cret"}},
       absl::StatusCode::kUnauthenticated},
  };
  for (const Case& c : cases) {
    const absl::Status status = auth.Check(c.metadata);
    EXPECT_EQ(status.code(), c.want) << c.name << ": " << status;
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("s3cret")))
        << c.name;
  }
}

TEST(BearerTokenAuthTest, EmptyTokenAdmitsEverything) {
  const BearerTokenAuth auth("");
  EXPECT_FALSE(auth.enabled());
  EXPECT_TRUE(auth.Check({}).ok());
}

TEST(ReadTokenFileTest, FirstLineTrimmed) {
  const std::string path = std::string(getenv("TEST_TMPDIR")) + "/token";
  std::ofstream(path) << "  abc123 \nsecond line\n";
  absl::StatusOr<std::string> token = ReadTokenFile(path, "auth_token_file");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "abc123");

  std::ofstream(path) << "\n";
  token = ReadTokenFile(path, "auth_token_file");
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(token.status().message(), HasSubstr("--auth_token_file="));

  token = ReadTokenFile(path + ".missing", "auth_token_file");
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dserve::server
