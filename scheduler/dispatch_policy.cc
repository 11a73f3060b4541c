#include "scheduler/dispatch_policy.h"

#include <tuple>

namespace dserve::scheduler {

std::optional<int> PickReplica(const std::vector<ReplicaSnapshot>& replicas) {
  const ReplicaSnapshot* best = nullptr;
  for (const ReplicaSnapshot& r : replicas) {
    if (r.state != dserve::v1::REPLICA_STATE_READY) continue;
    if (best == nullptr ||
        std::make_tuple(r.last_dispatch, r.jobs_completed, r.index) <
            std::make_tuple(best->last_dispatch, best->jobs_completed,
                            best->index)) {
      best = &r;
    }
  }
  if (best == nullptr) return std::nullopt;
  return best->index;
}

}  // namespace dserve::scheduler
