#ifndef DSERVE_SCHEDULER_TESTING_FAKE_WORKER_LAUNCHER_H_
#define DSERVE_SCHEDULER_TESTING_FAKE_WORKER_LAUNCHER_H_

// Fake worker processes and a fake leader for supervisor tests: nothing is
// forked and no port is opened. The test plays the workers' part through
// the FakeRank handles (write a ready line, die) and the leader's part
// through FakeLeader (models, busy, the running plan's events and end).
//
// Thread-safe (the supervisor's loop and the test may run on different
// threads); nothing blocks: WaitFor returns at once.

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "proto/dserve/internal/v1/replica_leader.pb.h"
#include "scheduler/worker_launcher.h"

namespace dserve::scheduler::testing {

// One spawned rank as the test sees it.
class FakeRank {
 public:
  FakeRank(int pid, std::vector<std::string> args) : pid_(pid), args_(args) {}
  int pid() const { return pid_; }
  const std::vector<std::string>& args() const { return args_; }
  // Rank 0 writes `line` on its ready pipe.
  void WriteLine(const std::string& line);
  // The rank ends ("was killed by signal 9 (Killed)", "exited with status 3").
  void Die(const std::string& how);
  bool dead() const;
  // Signals the supervisor sent it, in order.
  std::vector<int> signals() const;

 private:
  friend class FakeChildProcess;
  const int pid_;
  const std::vector<std::string> args_;
  mutable absl::Mutex mu_;
  std::deque<std::string> lines_ ABSL_GUARDED_BY(mu_);
  std::optional<std::string> how_ ABSL_GUARDED_BY(mu_);
  std::vector<int> signals_ ABSL_GUARDED_BY(mu_);
};

// The leader side of a replica: what GetStatus answers and the plans it
// was asked to run.
class FakeLeader {
 public:
  struct Plan {
    dserve::internal::v1::ExecutionPlan plan;
    absl::Time deadline;
    LeaderLink::EventCallback on_event;
    LeaderLink::EndCallback on_end;
    bool cancelled = false;
    bool ended = false;
  };

  void SetModels(std::vector<std::string> names);
  void SetBusy(bool busy);
  // GetStatus fails with `status` while it is not OK.
  void SetStatusError(absl::Status status);
  int get_status_calls() const;

  // Plans started so far (the last one is the running one, if any).
  int plans() const;
  dserve::internal::v1::ExecutionPlan plan(int i) const;
  bool cancelled(int i) const;
  // Delivers an event of the running plan, then (End) its end.
  void Emit(const dserve::internal::v1::ExecutionEvent& event);
  void End(absl::Status status);

 private:
  friend class FakeLink;
  friend class FakePlanStream;
  mutable absl::Mutex mu_;
  std::vector<std::string> models_ ABSL_GUARDED_BY(mu_) = {"fake-model"};
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_error_ ABSL_GUARDED_BY(mu_);
  int get_status_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<Plan>> plans_ ABSL_GUARDED_BY(mu_);
};

class FakeWorkerLauncher final : public WorkerLauncher {
 public:
  FakeWorkerLauncher();

  absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(
      const std::string& binary, std::vector<std::string> args,
      bool with_ready_pipe, std::vector<std::string> extra_env) override;
  std::unique_ptr<LeaderLink> Connect(const std::string& address,
                                      const std::string& secret) override;

  // Spawn fails with `status` while it is not OK.
  void FailSpawns(absl::Status status);
  // Every rank spawned so far, in order (a restart appends a new set).
  std::vector<std::shared_ptr<FakeRank>> ranks() const;
  std::shared_ptr<FakeRank> rank(int i) const { return ranks().at(i); }
  int connects() const;
  FakeLeader& leader() { return leader_; }

 private:
  mutable absl::Mutex mu_;
  int next_pid_ ABSL_GUARDED_BY(mu_) = 1000;
  absl::Status spawn_error_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<FakeRank>> ranks_ ABSL_GUARDED_BY(mu_);
  int connects_ ABSL_GUARDED_BY(mu_) = 0;
  FakeLeader leader_;
};

}  // namespace dserve::scheduler::testing

#endif  // DSERVE_SCHEDULER_TESTING_FAKE_WORKER_LAUNCHER_H_
