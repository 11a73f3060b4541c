#ifndef DSERVE_SCHEDULER_SCHEDULER_H_
#define DSERVE_SCHEDULER_SCHEDULER_H_

// Scheduler: the frontend tier's one loop. It owns the request queue and the
// table of running plans, and moves jobs from the queue onto replicas:
//
//   RunOnce():  expire deadlines -> drop cancelled -> snapshot replicas ->
//               policy (replica, then batch) -> build plan -> dispatch ->
//               route replica events
//
// Replica callbacks never touch jobs directly: they post to an inbox that
// RunOnce drains, so every job transition after admission happens on the
// scheduler's thread, in the order above.
//
// Ownership: the scheduler does not own the replicas or the clock (both must
// outlive it); it holds shared references to queued and running jobs.
// Thread-safety: every public method is thread-safe. Submit/Cancel/Info
// calls never block on a replica; RunOnce is meant for one thread (the loop
// started by Start, or a test calling it directly); Stop and WaitUntilIdle
// block.

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/dserve/internal/v1/replica_leader.pb.h"
#include "proto/dserve/v1/diffusion_service.pb.h"
#include "scheduler/clock.h"
#include "scheduler/dispatch_policy.h"
#include "scheduler/job.h"
#include "scheduler/replica_handle.h"
#include "scheduler/request_queue.h"

namespace dserve::scheduler {

struct SchedulerOptions {
  // Most jobs waiting at once; Submit beyond it gives RESOURCE_EXHAUSTED.
  int queue_capacity = 64;
  // Longest the loop sleeps between checks when nothing wakes it; bounds how
  // late a running job's deadline is noticed.
  absl::Duration idle_poll = absl::Milliseconds(100);
  // A job queued this long runs before any younger job, whatever its
  // priority (anti-starvation); zero or infinite turns aging off.
  absl::Duration max_queue_age = absl::InfiniteDuration();
  // Most jobs in one plan (1 = no batching). Compatible queued jobs (same
  // model, size, frames, steps, shift, sampler, output format) run together;
  // each keeps its own seed, events and result.
  int max_batch = 1;
  // How long the head job may wait for companions before a partial batch is
  // dispatched (see batch_policy.h). Only matters when max_batch > 1.
  absl::Duration batch_wait = absl::ZeroDuration();
};

class Scheduler {
 public:
  Scheduler(SchedulerOptions options, std::vector<ReplicaHandle*> replicas,
            const Clock* clock);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Admits `job` into the queue (its Queued event fires here). UNAVAILABLE
  // when admission was stopped (drain) or every replica FAILED;
  // RESOURCE_EXHAUSTED when the queue is full.
  absl::Status Submit(std::shared_ptr<Job> job);

  // Cancels `job` with `reason` (CANCELLED or DEADLINE_EXCEEDED status). A
  // queued job ends at once. A running job that shares its plan with jobs
  // not cancelled ends at the next RunOnce (its result is discarded, the
  // others run on); once every job of a plan is cancelled, the replica is
  // told to stop at the next step boundary and the jobs end when it reports
  // back. A finished job is left unchanged.
  void Cancel(const std::shared_ptr<Job>& job, absl::Status reason);

  // One pass of the loop (see the file comment).
  void RunOnce();

  // Runs RunOnce on a scheduler-owned thread until Stop, woken by new jobs,
  // cancels and replica events.
  void Start();
  // Stops the loop and ends every job still queued or running with `reason`
  // (running plans are cancelled on their replicas). Blocks until the loop
  // thread exited. Idempotent.
  void Stop(absl::Status reason);

  // New Submits fail with `reason` (UNAVAILABLE) from now on.
  void StopAdmitting(absl::Status reason);
  bool admitting() const;
  // Cancels every queued and running job with `reason`.
  void CancelAll(absl::Status reason);
  // Blocks until nothing is queued or running, or `timeout` (wall time)
  // passed. Returns true when idle.
  bool WaitUntilIdle(absl::Duration timeout);

  std::vector<dserve::v1::ReplicaInfo> ReplicaInfos() const;
  // Models of the first replica that reported any (all replicas load the
  // same models); empty while none is READY yet.
  std::vector<dserve::v1::ModelInfo> Models() const;
  // True when at least one replica is READY or BUSY.
  bool AnyReplicaServing() const;
  // True when no replica is left to run a job: every one is FAILED and none
  // will restart by itself (ReplicaHandle::RestartPending), or there are
  // none. A FAILED replica whose restart is pending keeps the queue, like a
  // STARTING one.
  bool NoReplicaLeft() const;
  int queue_depth() const { return queue_.size(); }
  int queue_capacity() const { return queue_.capacity(); }

 private:
  // A replica callback, posted to the inbox. `plan_id` ties it to the plan
  // it belongs to.
  struct Inbound {
    int replica = 0;
    int64_t plan_id = 0;
    std::optional<dserve::internal::v1::ExecutionEvent> event;
    std::optional<absl::Status> done;
  };
  struct RunningPlan {
    int64_t plan_id = 0;
    std::vector<std::shared_ptr<Job>> jobs;
    absl::Time start;
    bool cancel_sent = false;
    std::optional<dserve::internal::v1::PlanDone> done;
  };

  void Wake();
  void Loop();
  void Post(Inbound inbound);

  // The steps of RunOnce, in order.
  void ExpireDeadlines(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropCancelled(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<ReplicaSnapshot> Snapshot() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchQueued(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RouteEvents(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ENCODE (every job of the plan) or DECODE (one job, or all when
  // job_id is empty) progress of a running plan.
  void RouteStage(RunningPlan& plan,
                  const dserve::internal::v1::StageProgress& stage,
                  absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RouteStep(RunningPlan& plan, const dserve::internal::v1::StepDone& step,
                 absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishPlan(int replica, RunningPlan& plan, const absl::Status& status,
                  absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailQueuedIfNoReplicaLeft(absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SchedulerOptions options_;
  const std::vector<ReplicaHandle*> replicas_;
  const Clock* const clock_;
  RequestQueue queue_;

  // Serializes RunOnce and guards the scheduler's view of running plans.
  mutable absl::Mutex mu_;
  std::map<int, RunningPlan> running_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> last_dispatch_ ABSL_GUARDED_BY(mu_);
  int64_t next_plan_id_ ABSL_GUARDED_BY(mu_) = 1;

  // Guards the inbox and the wake-up flag. Never held while calling into a
  // job or a replica, so replica callbacks can post from any thread.
  mutable absl::Mutex wake_mu_;
  absl::CondVar wake_cv_;
  bool wake_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stop_ ABSL_GUARDED_BY(wake_mu_) = false;
  std::deque<Inbound> inbox_ ABSL_GUARDED_BY(wake_mu_);
  std::optional<absl::Status> admission_closed_ ABSL_GUARDED_BY(wake_mu_);
  // When a partial batch is being held back, the time the loop must wake to
  // dispatch it (the head's create_time + batch_wait).
  std::optional<absl::Time> batch_wake_ ABSL_GUARDED_BY(wake_mu_);

  std::thread thread_;
  bool stopped_ = false;  // Only touched by Stop's caller.
};

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_SCHEDULER_H_
