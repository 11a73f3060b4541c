#include "scheduler/retry_policy.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dserve::scheduler {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

struct Row {
  std::string name;
  RetrySnapshot snapshot;
  bool retry;
};

RetrySnapshot Died() {
  RetrySnapshot s;
  s.status = absl::UnavailableError("replica 0: rank 1 (pid 42) was killed");
  s.now = kNow;
  return s;
}

TEST(RetryPolicyTest, Table) {
  std::vector<Row> rows;
  rows.push_back({"replica died under the job: retry once", Died(), true});
  {
    RetrySnapshot s = Died();
    s.retries = 1;
    rows.push_back({"never twice", s, false});
  }
  {
    RetrySnapshot s = Died();
    s.cancelled = true;
    rows.push_back({"never after a cancel", s, false});
  }
  {
    RetrySnapshot s = Died();
    s.deadline = kNow;
    rows.push_back({"never once the deadline passed", s, false});
  }
  {
    RetrySnapshot s = Died();
    s.deadline = kNow + absl::Seconds(1);
    rows.push_back({"a deadline still ahead allows it", s, true});
  }
  {
    RetrySnapshot s = Died();
    s.no_replica_left = true;
    rows.push_back({"not when every replica is FAILED for good", s, false});
  }
  for (absl::Status other :
       {absl::OkStatus(), absl::CancelledError("x"),
        absl::DeadlineExceededError("x"), absl::InvalidArgumentError("x"),
        absl::InternalError("x"), absl::ResourceExhaustedError("x")}) {
    RetrySnapshot s = Died();
    s.status = other;
    rows.push_back({"not for " + other.ToString(), s, false});
  }
  for (const Row& row : rows) {
    EXPECT_EQ(ShouldRetry(row.snapshot), row.retry) << row.name;
  }
}

}  // namespace
}  // namespace dserve::scheduler
