#include "common/rpc_status.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::common {
namespace {

using ::testing::HasSubstr;

struct Case {
  absl::StatusCode absl_code;
  grpc::StatusCode grpc_code;
};

constexpr Case kCases[] = {
    {absl::StatusCode::kCancelled, grpc::CANCELLED},
    {absl::StatusCode::kUnknown, grpc::UNKNOWN},
    {absl::StatusCode::kInvalidArgument, grpc::INVALID_ARGUMENT},
    {absl::StatusCode::kDeadlineExceeded, grpc::DEADLINE_EXCEEDED},
    {absl::StatusCode::kNotFound, grpc::NOT_FOUND},
    {absl::StatusCode::kAlreadyExists, grpc::ALREADY_EXISTS},
    {absl::StatusCode::kPermissionDenied, grpc::PERMISSION_DENIED},
    {absl::StatusCode::kResourceExhausted, grpc::RESOURCE_EXHAUSTED},
    {absl::StatusCode::kFailedPrecondition, grpc::FAILED_PRECONDITION},
    {absl::StatusCode::kAborted, grpc::ABORTED},
    {absl::StatusCode::kOutOfRange, grpc::OUT_OF_RANGE},
    {absl::StatusCode::kUnimplemented, grpc::UNIMPLEMENTED},
    {absl::StatusCode::kInternal, grpc::INTERNAL},
    {absl::StatusCode::kUnavailable, grpc::UNAVAILABLE},
    {absl::StatusCode::kDataLoss, grpc::DATA_LOSS},
    {absl::StatusCode::kUnauthenticated, grpc::UNAUTHENTICATED},
};

TEST(RpcStatusTest, ToGrpcKeepsCodeAndMessage) {
  for (const Case& c : kCases) {
    const grpc::Status out = ToGrpcStatus(absl::Status(c.absl_code, "why"));
    EXPECT_EQ(out.error_code(), c.grpc_code) << absl::StatusCodeToString(c.absl_code);
    EXPECT_EQ(out.error_message(), "why");
  }
}

TEST(RpcStatusTest, FromGrpcKeepsCodeAndMessage) {
  for (const Case& c : kCases) {
    const absl::Status out = FromGrpcStatus(grpc::Status(c.grpc_code, "why"));
    EXPECT_EQ(out.code(), c.absl_code) << c.grpc_code;
    EXPECT_EQ(out.message(), "why");
  }
}

TEST(RpcStatusTest, OkStaysOkBothWays) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK, "replica 1").ok());
}

TEST(RpcStatusTest, NeverABareError) {
  const grpc::Status out = ToGrpcStatus(absl::InternalError(""));
  EXPECT_EQ(out.error_code(), grpc::INTERNAL);
  EXPECT_THAT(out.error_message(), HasSubstr("INTERNAL without detail"));
}

TEST(RpcStatusTest, FromGrpcPrefixesTheContext) {
  const absl::Status out = FromGrpcStatus(
      grpc::Status(grpc::UNAVAILABLE, "rank 1 died"), "replica 0");
  EXPECT_EQ(out, absl::UnavailableError("replica 0: rank 1 died"));
}

}  // namespace
}  // namespace dserve::common
