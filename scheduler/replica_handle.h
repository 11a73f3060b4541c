#ifndef DSERVE_SCHEDULER_REPLICA_HANDLE_H_
#define DSERVE_SCHEDULER_REPLICA_HANDLE_H_

// ReplicaHandle: what the scheduler needs from one data-parallel replica.
// The real implementation (LocalReplica, replica.h) drives worker processes
// over the internal ReplicaLeader RPC; tests use FakeReplica
// (testing/fake_replica.h).
//
// Contract for implementations:
//  * Thread-safe. Info/Models/Cancel never block; Shutdown blocks.
//  * Run starts a plan and returns at once. It is accepted only while the
//    replica is READY; the replica is BUSY until the plan ends.
//  * on_event and on_done run on a thread owned by the replica. on_done runs
//    exactly once per accepted Run, after the last on_event, and after the
//    replica left BUSY (READY again, or FAILED) - so a scheduler woken by
//    on_done can dispatch the next plan at once.
//  * Cancel makes the running plan stop at the next step boundary; on_done
//    then reports CANCELLED (or the plan's result if it finished first).
//  * The state observer is called (on any thread, with no replica lock held)
//    after every state change.

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/dserve/internal/v1/replica_leader.pb.h"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::scheduler {

class ReplicaHandle {
 public:
  using EventCallback =
      std::function<void(const dserve::internal::v1::ExecutionEvent&)>;
  using DoneCallback = std::function<void(absl::Status)>;

  virtual ~ReplicaHandle() = default;

  virtual int index() const = 0;
  // State, layout, pids, current job and counters, for GetServerInfo and
  // the dispatch snapshot.
  virtual dserve::v1::ReplicaInfo Info() const = 0;
  // Models loaded on the replica's ranks; empty until it is READY.
  virtual std::vector<dserve::v1::ModelInfo> Models() const = 0;

  // Starts `plan` (see the contract above). FAILED_PRECONDITION when the
  // replica is not READY.
  virtual absl::Status Run(dserve::internal::v1::ExecutionPlan plan,
                           EventCallback on_event, DoneCallback on_done) = 0;
  virtual void Cancel() = 0;

  virtual void SetStateObserver(std::function<void()> observer) = 0;

  // True while the replica is FAILED and will start again by itself (its
  // restart back-off is running): the scheduler then keeps the jobs it would
  // run, as it would for a replica that is STARTING. False for a replica
  // that stays FAILED (it never started, or its restarts gave up).
  virtual bool RestartPending() const { return false; }

  // Stops the replica: asks the processes to exit, waits up to `grace`, then
  // kills them. A running plan ends (on_done) before Shutdown returns.
  virtual void Shutdown(absl::Duration grace) = 0;
};

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_REPLICA_HANDLE_H_
