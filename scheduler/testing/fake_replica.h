#ifndef DSERVE_SCHEDULER_TESTING_FAKE_REPLICA_H_
#define DSERVE_SCHEDULER_TESTING_FAKE_REPLICA_H_

// FakeReplica: a ReplicaHandle driven by the test. Run records the plan and
// returns; the test then plays the replica's side (EmitStep, Complete,
// EndWith) on its own thread, which invokes the scheduler's callbacks
// synchronously. Keeps the ReplicaHandle contract: on_done runs once per
// accepted Run, after the replica left BUSY.
//
// Thread-safe; no call blocks.

#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/replica_handle.h"

namespace dserve::scheduler::testing {

class FakeReplica final : public ReplicaHandle {
 public:
  explicit FakeReplica(int index, dserve::v1::ReplicaState state =
                                      dserve::v1::REPLICA_STATE_READY);

  // ReplicaHandle.
  int index() const override { return index_; }
  dserve::v1::ReplicaInfo Info() const override;
  std::vector<dserve::v1::ModelInfo> Models() const override;
  absl::Status Run(dserve::internal::v1::ExecutionPlan plan,
                   EventCallback on_event, DoneCallback on_done) override;
  void Cancel() override;
  void SetStateObserver(std::function<void()> observer) override;
  bool RestartPending() const override;
  void Shutdown(absl::Duration grace) override;

  // Test controls.
  void SetState(dserve::v1::ReplicaState state);
  void SetModels(std::vector<dserve::v1::ModelInfo> models);
  // Whether a FAILED state restarts by itself (RestartPending); default no.
  void SetRestartPending(bool pending);
  int runs() const;
  bool running() const;
  bool cancel_requested() const;
  std::optional<dserve::internal::v1::ExecutionPlan> last_plan() const;
  // Reports step `step` of the running plan (with a preview for job
  // `preview_job_id` when non-empty).
  void EmitStep(int step, const std::string& preview_job_id = "");
  // Reports PlanDone with one 1-byte "image/png" media per item (the byte is
  // the item's seed modulo 256, so tests can tell results apart), then ends
  // the plan with OK.
  void Complete();
  // Ends the running plan with `status` and moves the replica to
  // `next_state` (READY, or FAILED for a dead rank).
  void EndWith(absl::Status status, dserve::v1::ReplicaState next_state =
                                        dserve::v1::REPLICA_STATE_READY);

 private:
  void NotifyObserver();

  const int index_;
  mutable absl::Mutex mu_;
  dserve::v1::ReplicaState state_ ABSL_GUARDED_BY(mu_);
  std::vector<dserve::v1::ModelInfo> models_ ABSL_GUARDED_BY(mu_);
  int runs_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t jobs_completed_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool restart_pending_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<dserve::internal::v1::ExecutionPlan> plan_ ABSL_GUARDED_BY(mu_);
  EventCallback on_event_ ABSL_GUARDED_BY(mu_);
  DoneCallback on_done_ ABSL_GUARDED_BY(mu_);
  std::function<void()> observer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dserve::scheduler::testing

#endif  // DSERVE_SCHEDULER_TESTING_FAKE_REPLICA_H_
