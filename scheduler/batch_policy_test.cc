#include "scheduler/batch_policy.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::scheduler {
namespace {

using ::testing::ElementsAreArray;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

dserve::v1::GenerateRequest Req(int width, int steps = 4) {
  dserve::v1::GenerateRequest r;
  r.set_model("tiny");
  r.set_width(width);
  r.set_height(32);
  r.set_num_frames(1);
  r.set_num_inference_steps(steps);
  r.set_sampler(dserve::v1::SAMPLER_FLOW_EULER);
  return r;
}

TEST(BatchPolicyTest, EmptyQueueDecidesNothing) {
  const BatchDecision d =
      DecideBatch({}, kT0, absl::InfiniteDuration(), 4, absl::ZeroDuration());
  EXPECT_TRUE(d.members.empty());
  EXPECT_FALSE(d.dispatch_now);
}

// A job whose batch failed runs alone: as head it goes at once without
// companions, and it never rides along with another head.
TEST(BatchPolicyTest, RunAloneJobsAreNeverBatched) {
  const dserve::v1::GenerateRequest w64 = Req(64);
  std::vector<BatchCandidate> queue = {{0, 0, kT0, &w64, /*run_alone=*/true},
                                       {0, 1, kT0, &w64, false},
                                       {0, 2, kT0, &w64, true},
                                       {0, 3, kT0, &w64, false}};
  BatchDecision d = DecideBatch(queue, kT0, absl::InfiniteDuration(), 4,
                                absl::Seconds(10));
  EXPECT_THAT(d.members, ElementsAreArray({size_t{0}}));
  EXPECT_TRUE(d.dispatch_now);
  queue.erase(queue.begin());
  d = DecideBatch(queue, kT0, absl::InfiniteDuration(), 4, absl::ZeroDuration());
  EXPECT_THAT(d.members, ElementsAreArray({size_t{0}, size_t{2}}));
}

TEST(BatchPolicyTest, Table) {
  const dserve::v1::GenerateRequest w64 = Req(64);
  const dserve::v1::GenerateRequest w32 = Req(32);
  const dserve::v1::GenerateRequest w64s8 = Req(64, 8);
  struct Case {
    std::string name;
    // (priority, request) in queue order; sequence = index, all created at kT0
    // except where `ages_ms` says otherwise.
    std::vector<std::pair<int, const dserve::v1::GenerateRequest*>> queue;
    int max_batch;
    int batch_wait_ms;
    int now_ms;  // after kT0
    std::vector<size_t> members;
    bool dispatch_now;
    int wait_until_ms;  // after kT0, when !dispatch_now
  };
  const std::vector<Case> cases = {
      {"max_batch 1 dispatches the head alone at once",
       {{0, &w64}, {0, &w64}}, 1, 1000, 0, {0}, true, 0},
      {"four compatible fill a batch of four",
       {{0, &w64}, {0, &w64}, {0, &w64}, {0, &w64}, {0, &w64}}, 4, 1000, 0,
       {0, 1, 2, 3}, true, 0},
      {"incompatible width and steps are skipped, queue order kept",
       {{0, &w64}, {0, &w32}, {0, &w64s8}, {0, &w64}}, 4, 0, 0, {0, 3}, true,
       0},
      {"partial batch waits for batch_wait",
       {{0, &w64}, {0, &w64}}, 4, 20, 5, {0, 1}, false, 20},
      {"partial batch goes once the head waited batch_wait",
       {{0, &w64}, {0, &w64}}, 4, 20, 20, {0, 1}, true, 0},
      {"zero batch_wait never waits",
       {{0, &w64}}, 8, 0, 0, {0}, true, 0},
      {"head is the highest priority, companions follow in queue order",
       {{0, &w64}, {0, &w32}, {5, &w32}, {0, &w32}}, 3, 0, 0, {2, 1, 3}, true,
       0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<BatchCandidate> queue;
    for (size_t i = 0; i < c.queue.size(); ++i) {
      queue.push_back({c.queue[i].first, static_cast<int64_t>(i), kT0,
                       c.queue[i].second});
    }
    const BatchDecision d = DecideBatch(
        queue, kT0 + absl::Milliseconds(c.now_ms), absl::InfiniteDuration(),
        c.max_batch, absl::Milliseconds(c.batch_wait_ms));
    EXPECT_THAT(d.members, ElementsAreArray(c.members));
    EXPECT_EQ(d.dispatch_now, c.dispatch_now);
    if (!c.dispatch_now) {
      EXPECT_EQ(d.wait_until, kT0 + absl::Milliseconds(c.wait_until_ms));
    }
  }
}

TEST(BatchPolicyTest, AgedHeadLeadsTheBatch) {
  const dserve::v1::GenerateRequest w64 = Req(64);
  const dserve::v1::GenerateRequest w32 = Req(32);
  // The low-priority w32 job is old enough to be promoted: it leads, and only
  // w32 jobs may join it.
  std::vector<BatchCandidate> queue = {
      {9, 0, kT0 + absl::Seconds(9), &w64},
      {0, 1, kT0, &w32},
      {0, 2, kT0 + absl::Seconds(9), &w32},
  };
  const BatchDecision d =
      DecideBatch(queue, kT0 + absl::Seconds(10), absl::Seconds(5), 4,
                  absl::ZeroDuration());
  EXPECT_THAT(d.members, ElementsAreArray({1u, 2u}));
  EXPECT_TRUE(d.dispatch_now);
}

}  // namespace
}  // namespace dserve::scheduler
