#ifndef DSERVE_SCHEDULER_DISPATCH_POLICY_H_
#define DSERVE_SCHEDULER_DISPATCH_POLICY_H_

// Which replica runs the next plan: a pure function of a snapshot of the
// replicas, so it can be tested as a table and swapped without touching the
// scheduler loop. Holds no state; thread-safe; never blocks.

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::scheduler {

// What the policy may look at for one replica.
struct ReplicaSnapshot {
  int index = 0;
  dserve::v1::ReplicaState state = dserve::v1::REPLICA_STATE_UNSPECIFIED;
  int64_t jobs_completed = 0;
  // When the scheduler last handed this replica a plan; InfinitePast if
  // never.
  absl::Time last_dispatch = absl::InfinitePast();
};

// Least-recently-used among READY replicas: the replica that was handed work
// longest ago (never-used first), then the one with fewest completed jobs,
// then the lowest index. Spreading work this way means two concurrent
// clients land on different replicas, and an idle replica is not starved
// behind a fast one. Returns the chosen ReplicaSnapshot::index, or nullopt
// when no replica is READY.
std::optional<int> PickReplica(const std::vector<ReplicaSnapshot>& replicas);

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_DISPATCH_POLICY_H_
