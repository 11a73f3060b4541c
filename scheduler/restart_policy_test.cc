#include "scheduler/restart_policy.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::scheduler {
namespace {

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

RestartPolicy Policy(int max_crashes = 0) {
  RestartPolicy p;
  p.backoff = absl::Seconds(1);
  p.backoff_max = absl::Seconds(30);
  p.max_crashes_in_a_row = max_crashes;
  return p;
}

struct Row {
  std::string name;
  RestartPolicy policy;
  RestartHistory history;
  // Ready this long before the crash; InfiniteDuration = never READY.
  absl::Duration ready_for;
  bool restart;
  absl::Duration backoff;
  int crashes_after;
  std::string why_not;  // Substring; "" when restarting.
};

TEST(RestartPolicyTest, Table) {
  RestartPolicy off = Policy();
  off.restart = false;
  const absl::Duration never = absl::InfiniteDuration();
  const std::vector<Row> rows = {
      {"first start fails", Policy(), {false, 0}, never, false,
       absl::ZeroDuration(), 0, "never became READY"},
      {"restarts off", off, {true, 0}, absl::Seconds(1), false,
       absl::ZeroDuration(), 0, "restarts are off"},
      {"first crash", Policy(), {true, 0}, absl::Seconds(1), true,
       absl::Seconds(1), 1, ""},
      {"second in a row doubles", Policy(), {true, 1}, absl::Seconds(1), true,
       absl::Seconds(2), 2, ""},
      {"fourth in a row", Policy(), {true, 3}, absl::Seconds(1), true,
       absl::Seconds(8), 4, ""},
      {"capped at max", Policy(), {true, 9}, absl::Seconds(1), true,
       absl::Seconds(30), 10, ""},
      {"a restart that never got READY counts", Policy(), {true, 2}, never,
       true, absl::Seconds(4), 3, ""},
      {"healthy for backoff_max starts over", Policy(), {true, 6},
       absl::Seconds(30), true, absl::Seconds(1), 1, ""},
      {"healthy just under backoff_max does not", Policy(), {true, 2},
       absl::Seconds(29), true, absl::Seconds(4), 3, ""},
      {"storm within the limit", Policy(3), {true, 2}, absl::Seconds(1), true,
       absl::Seconds(4), 3, ""},
      {"storm over the limit gives up", Policy(3), {true, 3},
       absl::Seconds(1), false, absl::ZeroDuration(), 4,
       "crashed 4 times in a row (limit 3"},
      {"limit forgiven after a healthy run", Policy(3), {true, 3},
       absl::Seconds(31), true, absl::Seconds(1), 1, ""},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    const absl::Time crashed = kT0 + absl::Minutes(5);
    const absl::Time ready_at = row.ready_for == absl::InfiniteDuration()
                                    ? absl::InfiniteFuture()
                                    : crashed - row.ready_for;
    const RestartVerdict v =
        DecideRestart(row.policy, row.history, ready_at, crashed);
    EXPECT_EQ(v.restart, row.restart);
    if (row.restart) {
      EXPECT_EQ(v.backoff, row.backoff);
      EXPECT_EQ(v.restart_at, crashed + row.backoff);
      EXPECT_TRUE(v.why_not.empty());
    } else {
      EXPECT_EQ(v.restart_at, absl::InfiniteFuture());
      EXPECT_THAT(v.why_not, HasSubstr(row.why_not));
    }
    EXPECT_EQ(v.history.crashes_in_a_row, row.crashes_after);
    EXPECT_EQ(v.history.ever_ready, row.history.ever_ready);
  }
}

// Crash after crash, feeding each verdict's history into the next: the
// back-off grows 1, 2, 4, 8, 16, 30, 30 s and a limit ends the storm.
TEST(RestartPolicyTest, StormGrowsThenGivesUp) {
  RestartPolicy policy = Policy(/*max_crashes=*/7);
  RestartHistory history{true, 0};
  absl::Time t = kT0;
  std::vector<absl::Duration> backoffs;
  while (true) {
    const RestartVerdict v =
        DecideRestart(policy, history, t + absl::Seconds(1), t + absl::Seconds(2));
    history = v.history;
    if (!v.restart) {
      EXPECT_THAT(v.why_not, HasSubstr("crashed 8 times in a row"));
      break;
    }
    backoffs.push_back(v.backoff);
    t = v.restart_at;
  }
  EXPECT_EQ(backoffs,
            (std::vector<absl::Duration>{
                absl::Seconds(1), absl::Seconds(2), absl::Seconds(4),
                absl::Seconds(8), absl::Seconds(16), absl::Seconds(30),
                absl::Seconds(30)}));
}

}  // namespace
}  // namespace dserve::scheduler
