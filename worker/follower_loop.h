#ifndef DSERVE_WORKER_FOLLOWER_LOOP_H_
#define DSERVE_WORKER_FOLLOWER_LOOP_H_

// The loop of every rank other than the leader: receive the leader's next
// command (IDLE heartbeat, PLAN, SHUTDOWN) and act on it, in lockstep with
// ReplicaLeader::Serve on rank 0.
//
// Borrows the RankLoop and the world Communicator. Blocks until SHUTDOWN
// (OK), a failed collective (the error: a peer died or timed out), or the
// parent process going away (ABORTED). Not thread-safe.

#include <functional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "parallel/communicator.h"
#include "worker/rank_loop.h"

namespace dserve::worker {

struct FollowerOptions {
  // True once SIGTERM arrived. A follower keeps following (the leader decides
  // when the replica stops) but treats a vanished leader as a clean stop and
  // leaves on its own after `stop_grace` without a SHUTDOWN.
  std::function<bool()> stop_requested = [] { return false; };
  // False once the process that spawned this rank is gone.
  std::function<bool()> parent_alive = [] { return true; };
  absl::Duration stop_grace = absl::Seconds(10);
  std::function<absl::Time()> now = &absl::Now;
};

absl::Status FollowLeader(RankLoop& loop, parallel::Communicator& world,
                          const FollowerOptions& options);

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_FOLLOWER_LOOP_H_
