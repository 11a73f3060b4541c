#include "server/grpc_status_util.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::server {
namespace {

using ::testing::HasSubstr;

TEST(GrpcStatusUtilTest, KeepsCodeAndMessage) {
  struct Case {
    absl::Status in;
    grpc::StatusCode want;
  };
  const Case cases[] = {
      {absl::InvalidArgumentError("width: 100"), grpc::INVALID_ARGUMENT},
      {absl::NotFoundError("job j-1 not found"), grpc::NOT_FOUND},
      {absl::ResourceExhaustedError("queue is full"), grpc::RESOURCE_EXHAUSTED},
      {absl::UnavailableError("draining"), grpc::UNAVAILABLE},
      {absl::DeadlineExceededError("late"), grpc::DEADLINE_EXCEEDED},
      {absl::CancelledError("bye"), grpc::CANCELLED},
      {absl::FailedPreconditionError("x"), grpc::FAILED_PRECONDITION},
      {absl::InternalError("boom"), grpc::INTERNAL},
  };
  for (const Case& c : cases) {
    grpc::Status out = ToGrpcStatus(c.in);
    EXPECT_EQ(out.error_code(), c.want) << c.in;
    EXPECT_EQ(out.error_message(), c.in.message());
  }
}

TEST(GrpcStatusUtilTest, OkStaysOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(GrpcStatusUtilTest, NeverABareError) {
  grpc::Status out = ToGrpcStatus(absl::InternalError(""));
  EXPECT_EQ(out.error_code(), grpc::INTERNAL);
  EXPECT_THAT(out.error_message(), HasSubstr("INTERNAL without detail"));
}

}  // namespace
}  // namespace dserve::server
