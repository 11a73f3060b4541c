#include "scheduler/queue_aging.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dserve::scheduler {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1000);

QueuedJobSnapshot JobAt(int priority, int64_t sequence, int waited_s) {
  return {priority, sequence, kNow - absl::Seconds(waited_s)};
}

TEST(PickNextJobTest, Table) {
  struct Case {
    std::string name;
    std::vector<QueuedJobSnapshot> queue;
    absl::Duration max_age;
    std::optional<size_t> want;
  };
  const Case cases[] = {
      {"empty", {}, absl::Seconds(10), std::nullopt},
      {"higher priority first",
       {JobAt(0, 1, 5), JobAt(5, 2, 1)}, absl::Seconds(10), 1},
      {"equal priority is FIFO",
       {JobAt(1, 7, 1), JobAt(1, 3, 1), JobAt(1, 9, 1)}, absl::Seconds(10), 1},
      {"aged low priority overtakes high priority",
       {JobAt(9, 5, 1), JobAt(0, 1, 10)}, absl::Seconds(10), 1},
      {"just below the age is not promoted",
       {JobAt(9, 5, 1), JobAt(0, 1, 9)}, absl::Seconds(10), 0},
      {"among aged jobs the earliest arrival goes first, whatever priority",
       {JobAt(9, 4, 20), JobAt(0, 2, 30), JobAt(5, 3, 25)}, absl::Seconds(10),
       1},
      {"aging off (zero) is plain priority order",
       {JobAt(9, 5, 1), JobAt(0, 1, 1000)}, absl::ZeroDuration(), 0},
      {"aging off (infinite) is plain priority order",
       {JobAt(9, 5, 1), JobAt(0, 1, 1000)}, absl::InfiniteDuration(), 0},
      {"negative priorities order below zero",
       {JobAt(-3, 1, 1), JobAt(0, 2, 1)}, absl::Seconds(10), 1},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(PickNextJob(c.queue, kNow, c.max_age), c.want) << c.name;
  }
}

// A steady stream of high-priority arrivals: a low-priority job waits at
// most max_age (plus one dispatch) before it runs.
TEST(PickNextJobTest, LowPriorityIsNotStarvedByAStream) {
  const absl::Duration max_age = absl::Seconds(30);
  std::vector<QueuedJobSnapshot> queue = {
      {0, 1, absl::FromUnixSeconds(0)}};
  int64_t sequence = 2;
  // One dispatch per second; one high-priority arrival per second.
  for (int t = 1; t <= 100; ++t) {
    const absl::Time now = absl::FromUnixSeconds(t);
    queue.push_back({10, sequence++, now});
    std::optional<size_t> next = PickNextJob(queue, now, max_age);
    ASSERT_TRUE(next.has_value());
    if (queue[*next].priority == 0) {
      EXPECT_EQ(t, 30) << "the low-priority job ran at t=" << t;
      return;
    }
    queue.erase(queue.begin() + *next);
  }
  FAIL() << "the low-priority job never ran";
}

}  // namespace
}  // namespace dserve::scheduler
