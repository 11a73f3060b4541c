#ifndef DSERVE_SCHEDULER_LEADER_CLIENT_H_
#define DSERVE_SCHEDULER_LEADER_CLIENT_H_

// GrpcLeaderLink: the frontend's client of one replica's ReplicaLeader
// (proto/dserve/internal/v1/replica_leader.proto) over loopback gRPC.
//
// Execute runs on gRPC's callback API (a ClientReadReactor per plan): no
// thread per plan, events are handed to on_event as the leader writes them,
// and PlanStream::Cancel is the call's TryCancel. GetStatus is a unary call
// that blocks up to its deadline. Every call carries the replica's secret
// (common/replica_secret.h).
//
// Ownership: owns the channel and stub; each running Execute owns itself
// until its OnDone. Destroying the link cancels the Execute calls still
// running and blocks until each has returned from on_end (bounded at 10 s),
// so the link's reference to the channel is always its last (see
// RunningCalls in the .cc): never destroy it from on_event or on_end.
// Thread-safe.

#include <memory>
#include <string>

#include "scheduler/worker_launcher.h"

namespace dserve::scheduler {

// `context` prefixes every error message ("replica 1").
std::unique_ptr<LeaderLink> NewGrpcLeaderLink(const std::string& address,
                                              const std::string& secret,
                                              const std::string& context);

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_LEADER_CLIENT_H_
