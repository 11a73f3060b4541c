#ifndef DSERVE_WORKER_EXECUTE_REACTOR_H_
#define DSERVE_WORKER_EXECUTE_REACTOR_H_

// The server side of one ReplicaLeader.Execute call on gRPC's callback API
// (a ServerWriteReactor): it writes the PlanCall's events as the Serve loop
// pushes them (PlanCall's wake-up, no polling, no thread per call) and ends
// the call with the plan's status. The caller cancelling the call, its
// deadline passing or a failed write cancel the PlanCall, which the Serve
// loop notices at the next step boundary.
//
// Ownership: the reactor shares the PlanCall with the queue and the loop,
// and owns itself until gRPC's OnDone (and any wake-up still running).
// Thread-safe: reactions and wake-ups may run on any thread.

#include <memory>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "proto/dserve/internal/v1/replica_leader.pb.h"
#include "worker/plan_queue.h"

namespace dserve::worker {

// The reactor an Execute handler returns for `call` (already queued).
grpc::ServerWriteReactor<dserve::internal::v1::ExecutionEvent>*
StartExecuteReactor(std::shared_ptr<PlanCall> call);

// A reactor that ends the call at once with `status` (a refused plan, a
// call without the replica's secret).
grpc::ServerWriteReactor<dserve::internal::v1::ExecutionEvent>*
FinishedExecuteReactor(const absl::Status& status);

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_EXECUTE_REACTOR_H_
