#include "scheduler/request_queue.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::shared_ptr<Job> MakeJob(const std::string& id, int priority,
                             int64_t sequence,
                             std::optional<absl::Time> deadline = std::nullopt) {
  JobSpec spec;
  spec.id = id;
  spec.effective_request.set_priority(priority);
  spec.sequence = sequence;
  spec.deadline = deadline;
  return std::make_shared<Job>(spec);
}

std::vector<std::string> Ids(const std::vector<std::shared_ptr<Job>>& jobs) {
  std::vector<std::string> ids;
  for (const auto& job : jobs) ids.push_back(job->id());
  return ids;
}

TEST(RequestQueueTest, PopsByPriorityThenArrival) {
  RequestQueue queue(10);
  ASSERT_TRUE(queue.Push(MakeJob("a", 0, 1)).ok());
  ASSERT_TRUE(queue.Push(MakeJob("b", 5, 2)).ok());
  ASSERT_TRUE(queue.Push(MakeJob("c", 0, 3)).ok());
  ASSERT_TRUE(queue.Push(MakeJob("d", 5, 4)).ok());
  ASSERT_TRUE(queue.Push(MakeJob("e", -3, 5)).ok());
  std::vector<std::string> order;
  while (auto job = queue.Pop()) order.push_back(job->id());
  EXPECT_THAT(order, ElementsAre("b", "d", "a", "c", "e"));
  EXPECT_EQ(queue.Pop(), nullptr);
}

TEST(RequestQueueTest, PushReportsPositionAndTellsTheJob) {
  RequestQueue queue(10);
  auto low = MakeJob("low", 0, 1);
  auto high = MakeJob("high", 9, 2);
  EXPECT_EQ(*queue.Push(low), 0);
  EXPECT_EQ(*queue.Push(high), 0);  // Jumps ahead of "low".
  EXPECT_EQ(*queue.Position("low"), 1);
  EXPECT_EQ(*queue.Position("high"), 0);
  EXPECT_FALSE(queue.Position("missing").has_value());

  dserve::v1::GenerateEvent seen;
  high->AddListener([&](const JobEvent& e) { seen = e.event; });
  EXPECT_TRUE(seen.has_queued());
  EXPECT_EQ(seen.queued().position(), 0);
}

TEST(RequestQueueTest, FullQueueIsResourceExhaustedWithCapacity) {
  RequestQueue queue(2);
  ASSERT_TRUE(queue.Push(MakeJob("a", 0, 1)).ok());
  ASSERT_TRUE(queue.Push(MakeJob("b", 0, 2)).ok());
  absl::StatusOr<int> third = queue.Push(MakeJob("c", 0, 3));
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(third.status().message(),
            "queue is full (2 of 2 jobs queued); retry later or raise "
            "--queue_capacity");
  queue.Pop();
  EXPECT_TRUE(queue.Push(MakeJob("c", 0, 3)).ok());
}

TEST(RequestQueueTest, DuplicateIdIsRejected) {
  RequestQueue queue(5);
  ASSERT_TRUE(queue.Push(MakeJob("a", 0, 1)).ok());
  EXPECT_EQ(queue.Push(MakeJob("a", 0, 2)).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(RequestQueueTest, RemoveTakesOneJobOut) {
  RequestQueue queue(5);
  ASSERT_TRUE(queue.Push(MakeJob("a", 0, 1)).ok());
  ASSERT_TRUE(queue.Push(MakeJob("b", 0, 2)).ok());
  ASSERT_TRUE(queue.Push(MakeJob("c", 0, 3)).ok());
  auto removed = queue.Remove("b");
  ASSERT_NE(removed, nullptr);
  EXPECT_EQ(removed->id(), "b");
  EXPECT_EQ(queue.Remove("b"), nullptr);
  EXPECT_EQ(queue.size(), 2);
  EXPECT_EQ(*queue.Position("c"), 1);
}

TEST(RequestQueueTest, ExtractExpiredTakesOnlyPastDeadlines) {
  const absl::Time now = absl::FromUnixSeconds(1000);
  RequestQueue queue(5);
  ASSERT_TRUE(queue.Push(MakeJob("past", 0, 1, now - absl::Seconds(1))).ok());
  ASSERT_TRUE(queue.Push(MakeJob("exact", 0, 2, now)).ok());
  ASSERT_TRUE(queue.Push(MakeJob("future", 0, 3, now + absl::Seconds(1))).ok());
  ASSERT_TRUE(queue.Push(MakeJob("none", 0, 4)).ok());
  EXPECT_EQ(*queue.NextDeadline(), now - absl::Seconds(1));
  EXPECT_THAT(Ids(queue.ExtractExpired(now)), ElementsAre("past", "exact"));
  EXPECT_EQ(queue.size(), 2);
  EXPECT_EQ(*queue.NextDeadline(), now + absl::Seconds(1));
}

TEST(RequestQueueTest, ExtractCancelledAndRemoveAll) {
  RequestQueue queue(5);
  auto a = MakeJob("a", 0, 1);
  auto b = MakeJob("b", 0, 2);
  ASSERT_TRUE(queue.Push(a).ok());
  ASSERT_TRUE(queue.Push(b).ok());
  b->RequestCancel(absl::CancelledError("user"));
  EXPECT_THAT(Ids(queue.ExtractCancelled()), ElementsAre("b"));
  EXPECT_THAT(Ids(queue.RemoveAll()), ElementsAre("a"));
  EXPECT_EQ(queue.size(), 0);
}

}  // namespace
}  // namespace dserve::scheduler

namespace dserve::scheduler {
namespace {

std::shared_ptr<Job> MakeJobCreatedAt(const std::string& id, int priority,
                                      int64_t sequence, absl::Time created) {
  JobSpec spec;
  spec.id = id;
  spec.effective_request.set_priority(priority);
  spec.sequence = sequence;
  spec.create_time = created;
  return std::make_shared<Job>(spec);
}

TEST(RequestQueuePopNextTest, AgedLowPriorityJobOvertakesHigherPriority) {
  const absl::Time t0 = absl::FromUnixSeconds(100);
  RequestQueue queue(10);
  ASSERT_TRUE(queue.Push(MakeJobCreatedAt("old-low", 0, 1, t0)).ok());
  ASSERT_TRUE(
      queue.Push(MakeJobCreatedAt("new-high", 5, 2, t0 + absl::Seconds(9)))
          .ok());
  ASSERT_TRUE(
      queue.Push(MakeJobCreatedAt("newer-high", 5, 3, t0 + absl::Seconds(9)))
          .ok());
  // Not aged yet at t0+9 s: priority order.
  auto first = queue.PopNext(t0 + absl::Seconds(9), absl::Seconds(10));
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->id(), "new-high");
  // At t0+10 s the low-priority job has waited max_age: it goes next.
  auto second = queue.PopNext(t0 + absl::Seconds(10), absl::Seconds(10));
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->id(), "old-low");
  EXPECT_EQ(queue.Position("old-low"), std::nullopt);
  EXPECT_EQ(queue.Position("newer-high"), 0);
  auto third = queue.PopNext(t0 + absl::Seconds(10), absl::Seconds(10));
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->id(), "newer-high");
  EXPECT_EQ(queue.PopNext(t0, absl::Seconds(10)), nullptr);
  EXPECT_EQ(queue.size(), 0);
}

TEST(RequestQueuePopNextTest, AgingOffIsPopOrder) {
  const absl::Time t0 = absl::FromUnixSeconds(100);
  RequestQueue queue(10);
  ASSERT_TRUE(queue.Push(MakeJobCreatedAt("old-low", 0, 1, t0)).ok());
  ASSERT_TRUE(queue.Push(MakeJobCreatedAt("high", 5, 2, t0)).ok());
  auto first = queue.PopNext(t0 + absl::Hours(1), absl::InfiniteDuration());
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->id(), "high");
}

}  // namespace
}  // namespace dserve::scheduler
