#include "clients/cli_status.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::clients {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Row {
  grpc::StatusCode code;
  int exit_code;
  const char* name;
};

// The table documented in cli_status.h; scripts depend on these numbers.
constexpr Row kTable[] = {
    {grpc::StatusCode::OK, 0, "OK"},
    {grpc::StatusCode::CANCELLED, 11, "CANCELLED"},
    {grpc::StatusCode::UNKNOWN, 12, "UNKNOWN"},
    {grpc::StatusCode::INVALID_ARGUMENT, 13, "INVALID_ARGUMENT"},
    {grpc::StatusCode::DEADLINE_EXCEEDED, 14, "DEADLINE_EXCEEDED"},
    {grpc::StatusCode::NOT_FOUND, 15, "NOT_FOUND"},
    {grpc::StatusCode::ALREADY_EXISTS, 16, "ALREADY_EXISTS"},
    {grpc::StatusCode::PERMISSION_DENIED, 17, "PERMISSION_DENIED"},
    {grpc::StatusCode::RESOURCE_EXHAUSTED, 18, "RESOURCE_EXHAUSTED"},
    {grpc::StatusCode::FAILED_PRECONDITION, 19, "FAILED_PRECONDITION"},
    {grpc::StatusCode::ABORTED, 20, "ABORTED"},
    {grpc::StatusCode::OUT_OF_RANGE, 21, "OUT_OF_RANGE"},
    {grpc::StatusCode::UNIMPLEMENTED, 22, "UNIMPLEMENTED"},
    {grpc::StatusCode::INTERNAL, 23, "INTERNAL"},
    {grpc::StatusCode::UNAVAILABLE, 24, "UNAVAILABLE"},
    {grpc::StatusCode::DATA_LOSS, 25, "DATA_LOSS"},
    {grpc::StatusCode::UNAUTHENTICATED, 26, "UNAUTHENTICATED"},
};

TEST(CliStatusTest, ExitCodesMatchDocumentedTable) {
  for (const Row& row : kTable) {
    EXPECT_EQ(ExitCodeForStatusCode(row.code), row.exit_code) << row.name;
    EXPECT_EQ(ExitCodeForStatusCode(static_cast<int>(row.code)), row.exit_code)
        << row.name;
    EXPECT_EQ(StatusCodeName(static_cast<int>(row.code)), row.name);
  }
}

TEST(CliStatusTest, ExitCodesAreDistinctAndAvoidReservedOnes) {
  std::set<int> seen = {kExitLocalFailure, kExitUsage};
  for (const Row& row : kTable) {
    EXPECT_TRUE(seen.insert(row.exit_code).second)
        << row.name << " reuses exit code " << row.exit_code;
    EXPECT_LT(row.exit_code, 64) << row.name;
  }
}

TEST(CliStatusTest, OutOfRangeCodesAreUnknown) {
  EXPECT_EQ(ExitCodeForStatusCode(99), 12);
  EXPECT_EQ(ExitCodeForStatusCode(-3), 12);
  EXPECT_EQ(StatusCodeName(99), "CODE_99");
}

TEST(CliStatusTest, DescribeKeepsServerMessageAndAddsHint) {
  const std::string line = DescribeStatus(grpc::Status(
      grpc::StatusCode::INVALID_ARGUMENT, "width 7 must be in [8, 1024]"));
  EXPECT_EQ(line,
            "error: INVALID_ARGUMENT: width 7 must be in [8, 1024] "
            "(fix the request)");
}

TEST(CliStatusTest, DescribeIsOneLine) {
  const std::string line = DescribeStatus(13, "first\nsecond\r\nthird");
  EXPECT_THAT(line, Not(HasSubstr("\n")));
  EXPECT_THAT(line, Not(HasSubstr("\r")));
  EXPECT_THAT(line, HasSubstr("first second"));
}

TEST(CliStatusTest, DescribeWithoutMessageOrHint) {
  EXPECT_EQ(DescribeStatus(6, ""), "error: ALREADY_EXISTS");
  EXPECT_EQ(DescribeStatus(grpc::Status::OK), "ok");
}

}  // namespace
}  // namespace dserve::clients
