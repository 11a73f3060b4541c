#include "scheduler/dispatch_policy.h"

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dserve::scheduler {
namespace {

constexpr auto kReady = dserve::v1::REPLICA_STATE_READY;
constexpr auto kBusy = dserve::v1::REPLICA_STATE_BUSY;
constexpr auto kStarting = dserve::v1::REPLICA_STATE_STARTING;
constexpr auto kFailed = dserve::v1::REPLICA_STATE_FAILED;
constexpr auto kDraining = dserve::v1::REPLICA_STATE_DRAINING;

absl::Time T(int seconds) { return absl::FromUnixSeconds(seconds); }
const absl::Time kNever = absl::InfinitePast();

struct Case {
  std::string name;
  std::vector<ReplicaSnapshot> replicas;
  std::optional<int> want;
};

TEST(DispatchPolicyTest, Table) {
  const std::vector<Case> cases = {
      {"no replicas", {}, std::nullopt},
      {"none ready",
       {{0, kBusy, 0, kNever}, {1, kStarting, 0, kNever},
        {2, kFailed, 0, kNever}, {3, kDraining, 0, kNever}},
       std::nullopt},
      {"only ready one", {{0, kBusy, 0, kNever}, {1, kReady, 5, T(9)}}, 1},
      {"never used beats used", {{0, kReady, 0, T(1)}, {1, kReady, 0, kNever}},
       1},
      {"least recently dispatched", {{0, kReady, 0, T(5)}, {1, kReady, 9, T(3)}},
       1},
      {"tie on time: fewest completed",
       {{0, kReady, 4, T(3)}, {1, kReady, 2, T(3)}}, 1},
      {"full tie: lowest index", {{0, kReady, 0, kNever}, {1, kReady, 0, kNever}},
       0},
      {"index field is returned, not the position",
       {{7, kFailed, 0, kNever}, {4, kReady, 0, kNever}}, 4},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(PickReplica(c.replicas), c.want) << c.name;
  }
}

TEST(DispatchPolicyTest, TwoConcurrentJobsLandOnDifferentReplicas) {
  std::vector<ReplicaSnapshot> replicas = {{0, kReady, 0, kNever},
                                           {1, kReady, 0, kNever}};
  std::optional<int> first = PickReplica(replicas);
  ASSERT_TRUE(first.has_value());
  replicas[*first].state = kBusy;
  replicas[*first].last_dispatch = T(1);
  std::optional<int> second = PickReplica(replicas);
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(*first, *second);
}

}  // namespace
}  // namespace dserve::scheduler
