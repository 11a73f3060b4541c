#ifndef DSERVE_SCHEDULER_SUPERVISOR_H_
#define DSERVE_SCHEDULER_SUPERVISOR_H_

// Supervisor: one replica's life as one loop. RunOnce(now) takes one step,
// in data-path order:
//
//   shutdown? -> start (first start, or a restart whose back-off ended) ->
//   reap children -> ready line -> start deadline -> plan (start it, route
//   its end: wait for a cancelled plan to stop, give a broken stream a
//   moment to be diagnosed) -> health -> restart verdict -> state edge
//
// and returns when it wants the next step (a child-poll tick, a deadline, a
// back-off's end). Inputs from other threads (Run, Cancel, Shutdown, a plan
// stream's end) only record what happened and call the wake callback, so
// every decision is taken in RunOnce. Policies are pure functions
// (restart_policy.h); the clock and the processes are injected
// (worker_launcher.h), so tests drive it with a fake clock and fake workers
// (supervisor_test.cc). LocalReplica (replica.h) runs it on one thread.
//
// Start-up: a fresh directory only this user can enter (mkdtemp, 0700)
// holds the ranks' FileStore; ranks 0..W-1 start at once with the replica's
// secret in their environment, rank 0 with a ready pipe; "leader <port>" on
// it -> GetStatus on the leader (its ModelInfo list is what the frontend
// validates against) -> READY. "error <reason>" instead: FAILED_PRECONDITION
// with that reason. A rank that dies tears the replica down (every rank is
// killed: a group with a dead member cannot be repaired), the replica is
// FAILED and a running plan ends with UNAVAILABLE naming the replica, the
// rank, its pid and how it died; restart_policy.h decides whether and when
// it starts again (FAILED -> STARTING -> READY).
//
// Ownership: owns its ChildProcesses (killed and reaped on shutdown or
// destruction), the leader link and the running PlanStream; borrows the
// launcher and the clock. Thread-safety: RunOnce must be called from one
// thread (it spawns the children: PR_SET_PDEATHSIG ties them to it); every
// other method is thread-safe and never blocks. RunOnce blocks only on
// bounded calls (spawn, GetStatus, reaping killed ranks; on shutdown the
// grace period).

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/dserve/internal/v1/replica_leader.pb.h"
#include "proto/dserve/v1/diffusion_service.pb.h"
#include "scheduler/clock.h"
#include "scheduler/replica_handle.h"
#include "scheduler/restart_policy.h"
#include "scheduler/worker_launcher.h"

namespace dserve::scheduler {

struct SupervisorOptions {
  int index = 0;
  int world_size = 1;
  // For logs only ("cfg=2,ring=1,...").
  std::string mesh_spec;
  std::string worker_binary;
  // argv[1..] of rank `rank` whose FileStore is `store_file`.
  std::function<std::vector<std::string>(int rank,
                                         const std::string& store_file)>
      rank_args;
  // What every leader call carries, handed to the ranks in their
  // environment.
  std::string secret;
  // Not OK (no secret could be drawn, options that cannot work): every
  // start fails with it.
  absl::Status start_precondition;
  // From spawning the ranks until the leader answered GetStatus.
  absl::Duration startup_timeout = absl::Seconds(120);
  RestartPolicy restart;
  // After a cancelled (or past-deadline) plan's call ended: how long the
  // replica stays BUSY waiting for the leader to say the plan stopped (at
  // its next step boundary), asking every stop_poll.
  absl::Duration cancel_stop_timeout = absl::Seconds(60);
  absl::Duration stop_poll = absl::Milliseconds(10);
  // The Execute call's deadline is the plan's deadline plus this.
  absl::Duration deadline_grace = absl::Seconds(5);
  // How often children are reaped and the ready pipe read.
  absl::Duration child_poll = absl::Milliseconds(100);
  // How often the leader's GetStatus refreshes the ranks' devices.
  absl::Duration health_interval = absl::Seconds(5);
  // A stream that broke with a code that may hide a dead rank waits this
  // long for the reaping to name the rank before it reports the RPC error.
  absl::Duration crash_diagnosis = absl::Seconds(2);
  // Called once, from RunOnce, when a start of a replica that was never
  // READY fails (it then stays FAILED). The message starts "replica N: ".
  std::function<void(const absl::Status&)> on_first_start_failed;
};

class Supervisor {
 public:
  // `launcher` and `clock` must outlive the supervisor. The clock is used
  // only for the shutdown grace period (RunOnce is given `now`).
  Supervisor(SupervisorOptions options, WorkerLauncher* launcher,
             const Clock* clock);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // One step of the loop (see the file comment). Returns when the next step
  // is due; absl::InfiniteFuture() once stopped() or when only an input can
  // change anything. Call again sooner when the wake callback runs.
  absl::Time RunOnce(absl::Time now);
  // True once a shutdown finished (processes reaped, last plan reported).
  bool stopped() const;

  // Called (any thread) when an input arrived that RunOnce should look at;
  // it must not call into the supervisor (it may run under its lock). Set
  // before the first RunOnce.
  void SetWake(std::function<void()> wake);
  void SetStateObserver(std::function<void()> observer);

  // ReplicaHandle's Run/Cancel contract: the plan starts at the next
  // RunOnce; on_done runs from RunOnce, after the replica left BUSY.
  absl::Status Run(dserve::internal::v1::ExecutionPlan plan,
                   ReplicaHandle::EventCallback on_event,
                   ReplicaHandle::DoneCallback on_done);
  void Cancel();
  // Asks the loop to stop: DRAINING (unless FAILED), the running plan is
  // cancelled; RunOnce then reports it, stops the ranks (SIGTERM, `grace`,
  // SIGKILL) and stopped() turns true.
  void RequestShutdown(absl::Duration grace);

  dserve::v1::ReplicaState state() const;
  // State, pids, leader address, current job, counters and rank devices
  // (not the index or the mesh: the owner's).
  void FillInfo(dserve::v1::ReplicaInfo& info) const;
  std::vector<dserve::v1::ModelInfo> Models() const;
  // Why the replica is FAILED (nullopt unless it is).
  std::optional<absl::Status> failure() const;
  // FAILED, and the restart policy will start it again
  // (ReplicaHandle::RestartPending). Set in the same step as the state.
  bool restart_pending() const;

 private:
  struct PlanSlot;

  // The steps of RunOnce, in order; each runs on the loop thread.
  bool FinishForShutdown(absl::Time now);
  void StartIfDue(absl::Time now);
  void ReapChildren(absl::Time now);
  void ReadReadyLines(absl::Time now);
  void CheckStartDeadline(absl::Time now, absl::Time& wake);
  void DrivePlan(absl::Time now, absl::Time& wake);
  void CheckHealth(absl::Time now, absl::Time& wake);
  void RestartIfDue(absl::Time now, absl::Time& wake);

  absl::Status SpawnRanks();
  absl::Status ConnectToLeader(int port, absl::Time now);
  // Tears the replica down with `failure` (no-op when already FAILED) and
  // takes the restart verdict.
  void Fail(const absl::Status& failure, absl::Time now);
  // Ends the running plan: leaves BUSY, counts it, calls on_done.
  void Report(const std::shared_ptr<PlanSlot>& plan, absl::Status status);
  void StopProcesses(absl::Duration grace);
  void RemoveStoreDir();
  void Notify();
  void Wake();

  const SupervisorOptions options_;
  WorkerLauncher* const launcher_;
  const Clock* const clock_;

  mutable absl::Mutex mu_;
  dserve::v1::ReplicaState state_ ABSL_GUARDED_BY(mu_) =
      dserve::v1::REPLICA_STATE_STARTING;
  std::vector<int> pids_ ABSL_GUARDED_BY(mu_);
  std::string leader_address_ ABSL_GUARDED_BY(mu_);
  std::vector<dserve::v1::ModelInfo> models_ ABSL_GUARDED_BY(mu_);
  std::vector<dserve::v1::RankDevice> rank_devices_ ABSL_GUARDED_BY(mu_);
  std::string current_job_id_ ABSL_GUARDED_BY(mu_);
  int64_t jobs_completed_ ABSL_GUARDED_BY(mu_) = 0;
  int restarts_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<PlanSlot> plan_ ABSL_GUARDED_BY(mu_);
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> failure_ ABSL_GUARDED_BY(mu_);
  bool restart_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_requested_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration shutdown_grace_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> observer_ ABSL_GUARDED_BY(mu_);
  std::function<void()> wake_ ABSL_GUARDED_BY(mu_);

  // Loop-thread only.
  std::vector<std::unique_ptr<ChildProcess>> processes_;
  std::unique_ptr<LeaderLink> link_;
  std::string store_dir_;
  // Waiting for rank 0's "leader" line (set at spawn, cleared at READY or
  // failure), and until when.
  bool starting_ = false;
  absl::Time start_deadline_ = absl::InfiniteFuture();
  // The next (re)start; InfiniteFuture = none planned.
  absl::Time start_at_ = absl::InfinitePast();
  absl::Time ready_at_ = absl::InfiniteFuture();
  absl::Time next_health_ = absl::InfiniteFuture();
  RestartHistory history_;
};

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_SUPERVISOR_H_
