#ifndef DSERVE_WORKER_PLAN_QUEUE_H_
#define DSERVE_WORKER_PLAN_QUEUE_H_

// The hand-off between the ReplicaLeader's RPC handlers and its Serve loop.
//
// An Execute RPC wraps its plan in a PlanCall and pushes it on the PlanQueue;
// the Serve loop pops it, runs it and pushes ExecutionEvents back into the
// PlanCall, which the RPC's reactor (execute_reactor.h) drains onto the
// wire as they come: every Push and Finish runs the call's wake-up. Cancellation flows the
// other way: the handler marks the call cancelled and the Serve loop, which
// asks before every step, stops the plan on every rank.
//
// Ownership: PlanCall is shared (std::shared_ptr) by the handler and the
// queue/loop, so either side may go away first. Both types are thread-safe.
// Only the Wait*/Pop* methods block, and only up to their timeout.

#include <deque>
#include <functional>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/dserve/internal/v1/replica_leader.pb.h"

namespace dserve::worker {

class PlanCall {
 public:
  explicit PlanCall(dserve::internal::v1::ExecutionPlan plan);

  const dserve::internal::v1::ExecutionPlan& plan() const { return plan_; }

  // --- RPC side ---
  // The client cancelled or its deadline passed. Idempotent.
  void Cancel();
  enum class Next { kEvent, kFinished, kTimeout };
  // Waits up to `timeout` for the next event (kEvent, `*event` set) or the
  // final status once every event has been taken (kFinished, `*status` set).
  Next WaitNext(absl::Duration timeout,
                dserve::internal::v1::ExecutionEvent* event,
                absl::Status* status);
  // WaitNext without waiting: kTimeout when nothing is ready yet.
  Next TryNext(dserve::internal::v1::ExecutionEvent* event,
               absl::Status* status);
  // Runs after every Push and Finish, on the pushing thread with no
  // PlanCall lock held (so it may call back into the call). A wake-up
  // already under way may still finish after SetWakeup(nullptr) returns:
  // it must hold what it uses (execute_reactor.cc holds a weak_ptr).
  void SetWakeup(std::function<void()> wakeup);

  // --- Serve loop side ---
  bool cancelled() const;
  void Push(dserve::internal::v1::ExecutionEvent event);
  // Ends the call; later Push/Finish calls are ignored.
  void Finish(absl::Status status);
  bool finished() const;

 private:
  const dserve::internal::v1::ExecutionPlan plan_;
  mutable absl::Mutex mu_;
  std::deque<dserve::internal::v1::ExecutionEvent> events_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> final_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> wakeup_ ABSL_GUARDED_BY(mu_);
};

// A bounded FIFO of calls waiting for the Serve loop.
class PlanQueue {
 public:
  explicit PlanQueue(int capacity);

  // RESOURCE_EXHAUSTED when `capacity` calls already wait; UNAVAILABLE once
  // closed. Waiting calls that were cancelled are finished and dropped
  // first, so they hold no place.
  absl::Status Push(std::shared_ptr<PlanCall> call);
  // The oldest waiting call, or nullptr if none arrives within `timeout`.
  std::shared_ptr<PlanCall> PopFor(absl::Duration timeout);
  // Rejects further pushes and finishes every waiting call with `status`.
  void Close(const absl::Status& status);
  int size() const;

 private:
  const int capacity_;
  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<PlanCall>> calls_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_PLAN_QUEUE_H_
