#ifndef DSERVE_SCHEDULER_WORKER_LAUNCHER_H_
#define DSERVE_SCHEDULER_WORKER_LAUNCHER_H_

// What the replica Supervisor (supervisor.h) drives, as interfaces, so its
// one loop runs against real processes and gRPC in production
// (process_launcher.h) and against fakes in tests
// (testing/fake_worker_launcher.h):
//
//   WorkerLauncher  spawns a rank (ChildProcess) and connects to a leader
//                   (LeaderLink);
//   ChildProcess    one rank: its ready pipe, signals, reaping;
//   LeaderLink      rank 0's ReplicaLeader: GetStatus (blocking, bounded by
//                   a deadline) and Execute (a PlanStream, returns at once;
//                   events are pushed as the leader produces them);
//   PlanStream      one running Execute call, for cancelling it.
//
// Thread-safety: ChildProcess is used by one thread (the supervisor's loop).
// LeaderLink, PlanStream and WorkerLauncher are thread-safe.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/dserve/internal/v1/replica_leader.pb.h"

namespace dserve::scheduler {

class ChildProcess {
 public:
  virtual ~ChildProcess() = default;
  virtual int pid() const = 0;
  // The next complete line of the ready pipe, if one arrived (never
  // blocks); std::nullopt when none has yet; UNAVAILABLE (saying how the
  // child ended when it did) once the pipe closed with no line left.
  virtual absl::StatusOr<std::optional<std::string>> TryReadLine() = 0;
  // Sends `signal` if the child still runs.
  virtual void Signal(int signal) = 0;
  // Non-blocking reap: once the child ended, how ("exited with status 1",
  // "was killed by signal 9 (Killed)"), on this and every later call.
  virtual std::optional<std::string> Poll() = 0;
  // Blocks up to `timeout` for the child to end; returns Poll().
  virtual std::optional<std::string> WaitFor(absl::Duration timeout) = 0;
};

class PlanStream {
 public:
  virtual ~PlanStream() = default;
  // Ends the call soon; its on_end then reports CANCELLED (unless it ended
  // first). Idempotent; any thread; never blocks.
  virtual void Cancel() = 0;
};

class LeaderLink {
 public:
  using EventCallback =
      std::function<void(const dserve::internal::v1::ExecutionEvent&)>;
  using EndCallback = std::function<void(absl::Status)>;

  virtual ~LeaderLink() = default;
  virtual std::string address() const = 0;
  // One GetStatus; blocks until answered or `deadline`. With
  // `wait_for_ready` it waits for the leader's port to accept (start-up).
  virtual absl::StatusOr<dserve::internal::v1::ReplicaStatus> GetStatus(
      absl::Time deadline, bool wait_for_ready) = 0;
  // Starts `plan` and returns at once. on_event runs for each event as it
  // arrives, then on_end once with the call's status (its message prefixed
  // with the replica), both on a thread the link owns; `deadline`
  // (InfiniteFuture = none) bounds the call.
  virtual std::shared_ptr<PlanStream> Execute(
      const dserve::internal::v1::ExecutionPlan& plan, absl::Time deadline,
      EventCallback on_event, EndCallback on_end) = 0;
};

class WorkerLauncher {
 public:
  virtual ~WorkerLauncher() = default;
  // Starts one rank (see WorkerProcess::Spawn for the arguments). Called on
  // the supervisor's loop thread, which outlives the children.
  virtual absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(
      const std::string& binary, std::vector<std::string> args,
      bool with_ready_pipe, std::vector<std::string> extra_env) = 0;
  // A link to the leader at `address` whose every call carries `secret`.
  // Never blocks (the first GetStatus connects).
  virtual std::unique_ptr<LeaderLink> Connect(const std::string& address,
                                              const std::string& secret) = 0;
};

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_WORKER_LAUNCHER_H_
