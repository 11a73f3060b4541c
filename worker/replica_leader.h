#ifndef DSERVE_WORKER_REPLICA_LEADER_H_
#define DSERVE_WORKER_REPLICA_LEADER_H_

// Rank 0 of a replica: serves dserve.internal.v1.ReplicaLeader and drives
// every rank through the world Communicator.
//
// Two halves meet in a PlanQueue:
//  * gRPC handlers (callback API): Execute validates the plan, queues it
//    and returns a reactor (execute_reactor.h) that writes the events the
//    Serve loop pushes as they come; cancelling the RPC (or its deadline
//    passing) marks the call cancelled. GetStatus answers from immutable
//    data plus the busy flag. No handler blocks or polls.
//  * Serve (the tier's one loop, on the thread that owns the Communicator):
//    wait up to one heartbeat interval for a plan → broadcast IDLE, PLAN or
//    SHUTDOWN → run the plan in lockstep (RankLoop), streaming StageProgress
//    ENCODE, a StepDone per step, StageProgress DECODE per item and chunk,
//    then PlanDone. The heartbeat keeps followers' collectives short and
//    turns a dead peer into a failed broadcast within seconds.
//
// Ownership: borrows the RankLoop, Communicator and Pipeline (they must
// outlive it); owns the queue. The service methods are thread-safe; Serve
// must run on one thread, and blocks until shutdown or failure.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "parallel/communicator.h"
#include "parallel/device_mesh.h"
#include "proto/dserve/internal/v1/replica_leader.grpc.pb.h"
#include "worker/models/pipeline.h"
#include "worker/plan_queue.h"
#include "worker/rank_loop.h"

namespace dserve::worker {

struct ReplicaLeaderOptions {
  int replica = 0;
  // This replica's layout (dp = 1): GetStatus reports it, and the models'
  // weight bytes per rank are computed for it.
  parallel::MeshDegrees mesh;
  // Pid of every rank, indexed by rank.
  std::vector<int> pids;
  // The idle leader broadcasts at least this often.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Execute calls that may wait while another plan runs.
  int max_pending_plans = 4;
  // True once SIGTERM arrived: cancel the running plan at its next step,
  // refuse new ones, broadcast SHUTDOWN and return OK.
  std::function<bool()> stop_requested = [] { return false; };
  // False once the spawning process is gone; Serve then fails.
  std::function<bool()> parent_alive = [] { return true; };
  // Clock for the media-encoding part of PlanDone.decode_ms.
  std::function<absl::Time()> now = &absl::Now;
  // Every rank's device, dtype, backend and GPU memory for GetStatus
  // (called on a gRPC thread; must be thread-safe). Unset = none reported.
  std::function<std::vector<dserve::v1::RankDevice>()> rank_devices;
  // Each served model's cost measured at start-up, by model name
  // (worker/cost_calibration.h), reported as its ModelInfo.cost; a model
  // without an entry reports none (its jobs are admitted unestimated).
  std::map<std::string, dserve::v1::CostModel> costs;
};

class ReplicaLeader final
    : public dserve::internal::v1::ReplicaLeader::CallbackService {
 public:
  // Serves every model of `loop` (RankLoop::models(); GetStatus lists them
  // all, the default one marked).
  ReplicaLeader(RankLoop& loop, parallel::Communicator& world,
                ReplicaLeaderOptions options);
  // The one-model form: `pipeline` must be `loop`'s only model.
  ReplicaLeader(const models::Pipeline& pipeline, RankLoop& loop,
                parallel::Communicator& world, ReplicaLeaderOptions options);
  ~ReplicaLeader() override;

  grpc::ServerWriteReactor<dserve::internal::v1::ExecutionEvent>* Execute(
      grpc::CallbackServerContext* context,
      const dserve::internal::v1::ExecutionPlan* plan) override;
  grpc::ServerUnaryReactor* GetStatus(
      grpc::CallbackServerContext* context,
      const dserve::internal::v1::GetStatusRequest* request,
      dserve::internal::v1::ReplicaStatus* response) override;

  // The leader's loop. OK after a requested stop (SHUTDOWN broadcast); an
  // error when a collective failed or the parent died (peers cannot be
  // trusted to be in step any more: the process should exit non-zero).
  absl::Status Serve();

  bool busy() const { return busy_.load(); }
  // Execute calls waiting for the Serve loop (not counting the running one).
  int pending_plans() const { return queue_.size(); }

 private:
  // Checks `call`'s plan (resolvable, output format, size, not shutting
  // down) and queues it for the Serve loop.
  absl::Status Enqueue(const std::shared_ptr<PlanCall>& call);
  // Runs one popped call on every rank and finishes it. Returns an error only
  // when the replica can no longer continue.
  absl::Status RunCall(PlanCall& call);

  RankLoop& loop_;
  parallel::Communicator& world_;
  const ReplicaLeaderOptions options_;
  PlanQueue queue_;
  std::atomic<bool> busy_{false};
};

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_REPLICA_LEADER_H_
