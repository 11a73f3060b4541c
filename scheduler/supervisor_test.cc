#include "scheduler/supervisor.h"

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/scheduler.h"
#include "scheduler/testing/fake_clock.h"
#include "scheduler/testing/fake_worker_launcher.h"

namespace dserve::scheduler {
namespace {

using ::dserve::v1::ReplicaState;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::FakeClock;
using testing::FakeWorkerLauncher;

constexpr ReplicaState kStarting = dserve::v1::REPLICA_STATE_STARTING;
constexpr ReplicaState kReady = dserve::v1::REPLICA_STATE_READY;
constexpr ReplicaState kBusy = dserve::v1::REPLICA_STATE_BUSY;
constexpr ReplicaState kFailed = dserve::v1::REPLICA_STATE_FAILED;

dserve::internal::v1::ExecutionPlan Plan(const std::string& job = "j-7") {
  dserve::internal::v1::ExecutionPlan plan;
  plan.set_num_inference_steps(4);
  auto* item = plan.add_items();
  item->set_job_id(job);
  item->set_seed(11);
  return plan;
}

// Collects one plan's callbacks.
struct PlanRecorder {
  int events = 0;
  int dones = 0;
  absl::Status status;
  ReplicaHandle::EventCallback OnEvent() {
    return [this](const dserve::internal::v1::ExecutionEvent&) { ++events; };
  }
  ReplicaHandle::DoneCallback OnDone() {
    return [this](absl::Status s) {
      ++dones;
      status = std::move(s);
    };
  }
};

SupervisorOptions Options(int world = 2) {
  SupervisorOptions o;
  o.index = 3;
  o.world_size = world;
  o.mesh_spec = "cfg=2";
  o.worker_binary = "dserve_worker";
  o.rank_args = [](int rank, const std::string& store) {
    return std::vector<std::string>{absl::StrCat("--rank=", rank),
                                    absl::StrCat("--store_file=", store)};
  };
  o.secret = "s3cret";
  o.startup_timeout = absl::Seconds(20);
  o.restart.backoff = absl::Seconds(1);
  o.restart.backoff_max = absl::Seconds(30);
  return o;
}

class SupervisorTest : public ::testing::Test {
 protected:
  void Make(SupervisorOptions options = Options()) {
    options.on_first_start_failed = [this](const absl::Status& s) {
      first_start_failures_.push_back(s);
    };
    supervisor_ = std::make_unique<Supervisor>(std::move(options), &launcher_,
                                               &clock_);
    supervisor_->SetWake([this] { ++wakes_; });
    supervisor_->SetStateObserver([this] { ++notifications_; });
  }
  absl::Time Step() { return supervisor_->RunOnce(clock_.Now()); }
  absl::Time Advance(absl::Duration d) {
    clock_.Advance(d);
    return Step();
  }
  ReplicaState state() const { return supervisor_->state(); }
  int spawned() const { return static_cast<int>(launcher_.ranks().size()); }
  // The newest start's rank `rank`.
  std::shared_ptr<testing::FakeRank> Rank(int rank) const {
    return launcher_.rank(spawned() - 2 + rank);
  }
  // Spawns (if due) and lets rank 0 report ready.
  void BecomeReady() {
    Step();
    Rank(0)->WriteLine("store 29500");
    Rank(0)->WriteLine("leader 4242");
    Step();
    ASSERT_EQ(state(), kReady);
  }

  FakeClock clock_;
  FakeWorkerLauncher launcher_;
  std::unique_ptr<Supervisor> supervisor_;
  std::vector<absl::Status> first_start_failures_;
  int wakes_ = 0;
  int notifications_ = 0;
};

TEST_F(SupervisorTest, StartsEveryRankThenIsReadyOnTheLeaderLine) {
  Make();
  EXPECT_EQ(state(), kStarting);
  const absl::Time next = Step();
  ASSERT_EQ(spawned(), 2);
  EXPECT_EQ(Rank(1)->args()[0], "--rank=1");
  EXPECT_THAT(Rank(0)->args()[1], HasSubstr("/store"));
  // Both ranks share the store file.
  EXPECT_EQ(Rank(0)->args()[1], Rank(1)->args()[1]);
  EXPECT_EQ(state(), kStarting);
  EXPECT_LE(next, clock_.Now() + absl::Milliseconds(100));
  Rank(0)->WriteLine("store 29500");
  Step();
  EXPECT_EQ(state(), kStarting);  // "store" is not "leader".
  Rank(0)->WriteLine("leader 4242");
  Step();
  EXPECT_EQ(state(), kReady);
  EXPECT_GE(notifications_, 1);
  dserve::v1::ReplicaInfo info;
  supervisor_->FillInfo(info);
  EXPECT_THAT(info.pids(), ElementsAre(1000, 1001));
  EXPECT_EQ(info.leader_address(), "127.0.0.1:4242");
  ASSERT_EQ(supervisor_->Models().size(), 1u);
  EXPECT_EQ(supervisor_->Models()[0].name(), "fake-model");
  EXPECT_EQ(info.ranks_size(), 1);

  supervisor_->RequestShutdown(absl::Seconds(1));
  EXPECT_EQ(Step(), absl::InfiniteFuture());
  EXPECT_TRUE(supervisor_->stopped());
  EXPECT_THAT(Rank(0)->signals(), ElementsAre(SIGTERM));
  EXPECT_THAT(Rank(1)->signals(), ElementsAre(SIGTERM));
}

// Crash in STARTING, first start: the replica stays FAILED (bad flags or a
// bad model are not fixed by a restart) and its owner is told.
TEST_F(SupervisorTest, CrashWhileStartingTheFirstTimeStaysFailed) {
  Make();
  Step();
  Rank(1)->Die("exited with status 3");
  Step();
  EXPECT_EQ(state(), kFailed);
  EXPECT_FALSE(supervisor_->restart_pending());  // never READY: stays FAILED
  ASSERT_TRUE(supervisor_->failure().has_value());
  EXPECT_EQ(supervisor_->failure()->message(),
            "rank 1 (pid 1001) exited with status 3 during start-up");
  ASSERT_EQ(first_start_failures_.size(), 1u);
  EXPECT_EQ(first_start_failures_[0].message(),
            "replica 3: rank 1 (pid 1001) exited with status 3 during "
            "start-up");
  // The other rank was torn down.
  EXPECT_THAT(Rank(0)->signals(), ElementsAre(SIGKILL));
  EXPECT_EQ(Advance(absl::Hours(1)), absl::InfiniteFuture());
  EXPECT_EQ(spawned(), 2);
  EXPECT_EQ(first_start_failures_.size(), 1u);
}

// A worker that refuses to start says why before it exits.
TEST_F(SupervisorTest, RefusalOnTheReadyPipeIsTheReason) {
  Make();
  Step();
  Rank(0)->WriteLine("error model 'wan' did not load");
  Rank(0)->Die("exited with status 2");
  Step();
  EXPECT_EQ(state(), kFailed);
  ASSERT_EQ(first_start_failures_.size(), 1u);
  EXPECT_EQ(first_start_failures_[0].code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(first_start_failures_[0].message(),
            "replica 3: rank 0 refused to start: model 'wan' did not load");
}

// Crash in STARTING of a restart: it counts as a crash in a row, so the
// back-off doubles.
TEST_F(SupervisorTest, CrashWhileRestartingBacksOffLonger) {
  Make();
  BecomeReady();
  Rank(0)->Die("was killed by signal 9 (Killed)");
  EXPECT_EQ(Step(), clock_.Now() + absl::Seconds(1));
  EXPECT_EQ(state(), kFailed);
  Advance(absl::Milliseconds(999));
  EXPECT_EQ(spawned(), 2);
  Advance(absl::Milliseconds(1));  // Back-off over: STARTING.
  EXPECT_EQ(state(), kStarting);
  Step();
  ASSERT_EQ(spawned(), 4);
  Rank(1)->Die("exited with status 1");
  Step();
  EXPECT_EQ(state(), kFailed);
  EXPECT_TRUE(first_start_failures_.empty());
  Advance(absl::Milliseconds(1999));
  EXPECT_EQ(spawned(), 4);
  Advance(absl::Milliseconds(1));
  Step();
  EXPECT_EQ(spawned(), 6);
  dserve::v1::ReplicaInfo info;
  supervisor_->FillInfo(info);
  EXPECT_EQ(info.restarts(), 2);
  EXPECT_THAT(info.pids(), ElementsAre(1004, 1005));
}

// Crash mid-plan: the plan's call is cancelled and ends with the rank's
// death (one on_done), then the replica restarts and runs plans again.
TEST_F(SupervisorTest, CrashMidPlanFailsThePlanOnceThenRestarts) {
  Make();
  BecomeReady();
  PlanRecorder rec;
  ASSERT_TRUE(supervisor_->Run(Plan(), rec.OnEvent(), rec.OnDone()).ok());
  EXPECT_EQ(state(), kBusy);
  EXPECT_FALSE(supervisor_->Run(Plan(), nullptr, nullptr).ok());
  Step();
  ASSERT_EQ(launcher_.leader().plans(), 1);
  dserve::internal::v1::ExecutionEvent step;
  step.mutable_step()->set_step(1);
  launcher_.leader().Emit(step);
  EXPECT_EQ(rec.events, 1);
  Rank(1)->Die("was killed by signal 9 (Killed)");
  Step();
  EXPECT_EQ(state(), kFailed);
  EXPECT_TRUE(launcher_.leader().cancelled(0));
  EXPECT_EQ(rec.dones, 0);  // Not before the call ended.
  launcher_.leader().End(absl::CancelledError("replica 3: Cancelled"));
  Step();
  ASSERT_EQ(rec.dones, 1);
  EXPECT_EQ(rec.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(rec.status.message(),
            "replica 3: rank 1 (pid 1001) was killed by signal 9 (Killed)");
  Advance(absl::Seconds(1));
  BecomeReady();
  PlanRecorder again;
  ASSERT_TRUE(supervisor_->Run(Plan(), again.OnEvent(), again.OnDone()).ok());
  Step();
  launcher_.leader().End(absl::OkStatus());
  Step();
  EXPECT_EQ(again.dones, 1);
  EXPECT_TRUE(again.status.ok());
  EXPECT_EQ(rec.dones, 1);
  dserve::v1::ReplicaInfo info;
  supervisor_->FillInfo(info);
  EXPECT_EQ(info.jobs_completed(), 1);
  EXPECT_EQ(info.restarts(), 1);
}

// Hang: no ready line within the start-up timeout fails the start; a
// replica that was READY before restarts.
TEST_F(SupervisorTest, HangWithoutReadyLineTimesOutAndRestarts) {
  Make();
  BecomeReady();
  Rank(0)->Die("was killed by signal 9 (Killed)");
  Step();
  Advance(absl::Seconds(1));
  Step();
  ASSERT_EQ(spawned(), 4);
  const absl::Time next = Advance(absl::Seconds(19));
  EXPECT_EQ(state(), kStarting);
  EXPECT_LE(next, clock_.Now() + absl::Seconds(1));
  Advance(absl::Seconds(1));
  EXPECT_EQ(state(), kFailed);
  EXPECT_EQ(supervisor_->failure()->code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(supervisor_->failure()->message(),
              HasSubstr("not ready within --startup_timeout_s=20"));
  EXPECT_THAT(Rank(0)->signals(), ElementsAre(SIGKILL));
  Advance(absl::Seconds(2));  // Second crash in a row: 2 s.
  Step();
  EXPECT_EQ(spawned(), 6);
  BecomeReady();
}

TEST_F(SupervisorTest, FirstStartHangFailsWithTheTimeout) {
  Make();
  Step();
  Advance(absl::Seconds(20));
  EXPECT_EQ(state(), kFailed);
  ASSERT_EQ(first_start_failures_.size(), 1u);
  EXPECT_EQ(first_start_failures_[0].code(),
            absl::StatusCode::kDeadlineExceeded);
}

// Slow start: ready just before the deadline is READY, no restart.
TEST_F(SupervisorTest, SlowStartReadyJustBeforeTheDeadline) {
  Make();
  Step();
  Advance(absl::Seconds(20) - absl::Milliseconds(1));
  Rank(0)->WriteLine("leader 4242");
  Step();
  EXPECT_EQ(state(), kReady);
  Advance(absl::Seconds(60));
  EXPECT_EQ(state(), kReady);
  EXPECT_EQ(spawned(), 2);
  dserve::v1::ReplicaInfo info;
  supervisor_->FillInfo(info);
  EXPECT_EQ(info.restarts(), 0);
}

// Restart storm: the back-off grows with each crash in a row and a limit
// leaves the replica FAILED with an error naming the last crash and why.
TEST_F(SupervisorTest, RestartStormBacksOffThenGivesUp) {
  SupervisorOptions options = Options();
  options.restart.max_crashes_in_a_row = 3;
  Make(options);
  BecomeReady();
  std::vector<absl::Duration> backoffs;
  for (int crash = 1; crash <= 4; ++crash) {
    Rank(1)->Die("exited with status 139");
    const absl::Time restart_at = Step();
    EXPECT_EQ(state(), kFailed) << crash;
    // The scheduler keeps its jobs while a restart is pending, not after
    // the policy gave up.
    EXPECT_EQ(supervisor_->restart_pending(),
              restart_at != absl::InfiniteFuture())
        << crash;
    if (restart_at == absl::InfiniteFuture()) break;
    backoffs.push_back(restart_at - clock_.Now());
    clock_.Advance(restart_at - clock_.Now());
    Step();
    EXPECT_FALSE(supervisor_->restart_pending()) << crash;
    BecomeReady();
  }
  EXPECT_EQ(backoffs, (std::vector<absl::Duration>{
                          absl::Seconds(1), absl::Seconds(2),
                          absl::Seconds(4)}));
  EXPECT_EQ(state(), kFailed);
  ASSERT_TRUE(supervisor_->failure().has_value());
  EXPECT_THAT(supervisor_->failure()->message(),
              HasSubstr("rank 1 (pid 1007) exited with status 139"));
  EXPECT_THAT(supervisor_->failure()->message(),
              HasSubstr("not restarted: it crashed 4 times in a row"));
  Advance(absl::Hours(1));
  EXPECT_EQ(spawned(), 8);
  EXPECT_TRUE(first_start_failures_.empty());
}

// After a cancel the call ends at once, but the replica stays BUSY until
// the leader says the plan stopped.
TEST_F(SupervisorTest, CancelledPlanStaysBusyUntilTheLeaderIsIdle) {
  Make();
  BecomeReady();
  PlanRecorder rec;
  ASSERT_TRUE(supervisor_->Run(Plan(), rec.OnEvent(), rec.OnDone()).ok());
  Step();
  supervisor_->Cancel();
  EXPECT_TRUE(launcher_.leader().cancelled(0));
  launcher_.leader().SetBusy(true);
  launcher_.leader().End(absl::CancelledError("replica 3: Cancelled"));
  const absl::Time next = Step();
  EXPECT_EQ(state(), kBusy);
  EXPECT_EQ(next, clock_.Now() + absl::Milliseconds(10));
  Advance(absl::Milliseconds(10));
  EXPECT_EQ(rec.dones, 0);
  launcher_.leader().SetBusy(false);
  Advance(absl::Milliseconds(10));
  EXPECT_EQ(state(), kReady);
  ASSERT_EQ(rec.dones, 1);
  EXPECT_EQ(rec.status.code(), absl::StatusCode::kCancelled);
}

// A status the leader chose is the request's error: READY again at once.
TEST_F(SupervisorTest, RefusedPlanIsReportedAtOnce) {
  Make();
  BecomeReady();
  PlanRecorder rec;
  ASSERT_TRUE(supervisor_->Run(Plan(), rec.OnEvent(), rec.OnDone()).ok());
  Step();
  launcher_.leader().End(absl::InvalidArgumentError("steps out of range"));
  Step();
  EXPECT_EQ(state(), kReady);
  EXPECT_EQ(rec.status.code(), absl::StatusCode::kInvalidArgument);
}

// A broken stream nobody asked for waits for the reaping to name a dead
// rank; when none died, the RPC's error is the answer.
TEST_F(SupervisorTest, BrokenStreamWaitsForTheCrashDiagnosis) {
  Make();
  BecomeReady();
  PlanRecorder rec;
  ASSERT_TRUE(supervisor_->Run(Plan(), rec.OnEvent(), rec.OnDone()).ok());
  Step();
  launcher_.leader().End(absl::UnavailableError("replica 3: Socket closed"));
  Step();
  EXPECT_EQ(state(), kBusy);
  Advance(absl::Milliseconds(1999));
  EXPECT_EQ(rec.dones, 0);
  Advance(absl::Milliseconds(1));
  EXPECT_EQ(state(), kReady);
  EXPECT_EQ(rec.status.message(), "replica 3: Socket closed");
}

TEST_F(SupervisorTest, HealthRefreshesEveryInterval) {
  Make();
  BecomeReady();
  const int calls = launcher_.leader().get_status_calls();
  Advance(absl::Seconds(4));
  EXPECT_EQ(launcher_.leader().get_status_calls(), calls);
  Advance(absl::Seconds(1));
  EXPECT_EQ(launcher_.leader().get_status_calls(), calls + 1);
  // A failing GetStatus is not a failure: the reaping decides.
  launcher_.leader().SetStatusError(absl::UnavailableError("down"));
  Advance(absl::Seconds(5));
  EXPECT_EQ(state(), kReady);
}

TEST_F(SupervisorTest, ShutdownReportsAPlanThatNeverStarted) {
  Make();
  BecomeReady();
  PlanRecorder rec;
  ASSERT_TRUE(supervisor_->Run(Plan(), rec.OnEvent(), rec.OnDone()).ok());
  supervisor_->RequestShutdown(absl::Seconds(1));
  EXPECT_EQ(state(), dserve::v1::REPLICA_STATE_DRAINING);
  Step();
  EXPECT_TRUE(supervisor_->stopped());
  ASSERT_EQ(rec.dones, 1);
  EXPECT_THAT(rec.status.message(), HasSubstr("stopped before the plan"));
}

TEST_F(SupervisorTest, SpawnFailureFailsTheFirstStart) {
  launcher_.FailSpawns(absl::FailedPreconditionError("cannot execute"));
  Make();
  Step();
  EXPECT_EQ(state(), kFailed);
  ASSERT_EQ(first_start_failures_.size(), 1u);
  EXPECT_EQ(first_start_failures_[0].message(), "replica 3: cannot execute");
}

// The supervisor as the scheduler sees it (a thin ReplicaHandle; the loop
// is stepped by the test).
class SteppedReplica final : public ReplicaHandle {
 public:
  SteppedReplica(int index, Supervisor* supervisor)
      : index_(index), supervisor_(supervisor) {}
  int index() const override { return index_; }
  dserve::v1::ReplicaInfo Info() const override {
    dserve::v1::ReplicaInfo info;
    info.set_index(index_);
    supervisor_->FillInfo(info);
    return info;
  }
  std::vector<dserve::v1::ModelInfo> Models() const override {
    return supervisor_->Models();
  }
  absl::Status Run(dserve::internal::v1::ExecutionPlan plan,
                   EventCallback on_event, DoneCallback on_done) override {
    return supervisor_->Run(std::move(plan), std::move(on_event),
                            std::move(on_done));
  }
  void Cancel() override { supervisor_->Cancel(); }
  void SetStateObserver(std::function<void()> observer) override {
    supervisor_->SetStateObserver(std::move(observer));
  }
  bool RestartPending() const override {
    return supervisor_->restart_pending();
  }
  void Shutdown(absl::Duration grace) override {
    supervisor_->RequestShutdown(grace);
  }

 private:
  const int index_;
  Supervisor* const supervisor_;
};

// Crash mid-plan end to end through the scheduler: the job runs once more
// (same seed) on the other replica, whose rank dies too: no second retry,
// one terminal state, UNAVAILABLE naming the rank.
TEST(SupervisedSchedulingTest, JobRetriedOnceThenFailsWithOneTerminalState) {
  FakeClock clock;
  FakeWorkerLauncher launchers[2];
  std::vector<std::unique_ptr<Supervisor>> supervisors;
  std::vector<std::unique_ptr<SteppedReplica>> replicas;
  std::vector<ReplicaHandle*> handles;
  for (int i = 0; i < 2; ++i) {
    SupervisorOptions options = Options();
    options.index = i;
    supervisors.push_back(
        std::make_unique<Supervisor>(options, &launchers[i], &clock));
    replicas.push_back(
        std::make_unique<SteppedReplica>(i, supervisors.back().get()));
    handles.push_back(replicas.back().get());
  }
  Scheduler scheduler(SchedulerOptions(), handles, &clock);
  auto step_all = [&] {
    for (auto& s : supervisors) s->RunOnce(clock.Now());
    scheduler.RunOnce();
  };
  step_all();
  for (auto& l : launchers) l.rank(0)->WriteLine("leader 4242");
  step_all();
  ASSERT_TRUE(scheduler.AnyReplicaServing());

  JobSpec spec;
  spec.id = "j-1";
  spec.effective_request.set_prompt("a red square");
  spec.effective_request.set_num_inference_steps(3);
  spec.effective_request.set_width(64);
  spec.effective_request.set_height(32);
  spec.effective_request.set_seed(41);
  spec.create_time = clock.Now();
  auto job = std::make_shared<Job>(spec);
  int terminal = 0;
  absl::Status final_status;
  job->AddListener([&](const JobEvent& e) {
    if (!e.terminal) return;
    ++terminal;
    final_status = e.status;
  });
  ASSERT_TRUE(scheduler.Submit(job).ok());
  step_all();  // Dispatch, then the supervisor starts the call.
  step_all();
  const int first = job->replica();
  ASSERT_EQ(launchers[first].leader().plans(), 1);
  launchers[first].rank(1)->Die("was killed by signal 9 (Killed)");
  step_all();  // Torn down; the call is cancelled.
  launchers[first].leader().End(absl::CancelledError("Cancelled"));
  step_all();  // The failure reaches the scheduler: requeued.
  step_all();  // Dispatched to the other replica.
  step_all();
  const int second = job->replica();
  ASSERT_EQ(second, 1 - first);
  EXPECT_EQ(job->retries(), 1);
  ASSERT_EQ(launchers[second].leader().plans(), 1);
  EXPECT_EQ(launchers[second].leader().plan(0).items(0).seed(), 41);
  EXPECT_EQ(terminal, 0);
  // The first replica restarts meanwhile.
  clock.Advance(absl::Seconds(1));
  step_all();
  step_all();
  launchers[first].rank(2)->WriteLine("leader 4243");
  step_all();
  EXPECT_EQ(supervisors[first]->state(), kReady);
  // The retry's replica dies too: the job fails, once.
  launchers[second].rank(0)->Die("exited with status 134");
  step_all();
  launchers[second].leader().End(absl::UnavailableError("Socket closed"));
  step_all();
  step_all();
  EXPECT_EQ(terminal, 1);
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_FAILED);
  EXPECT_EQ(final_status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(final_status.message(),
              HasSubstr(absl::StrCat("replica ", second,
                                     ": rank 0 (pid 1000) exited with "
                                     "status 134")));
  EXPECT_EQ(launchers[first].leader().plans(), 1);  // Not retried there.
  scheduler.Stop(absl::UnavailableError("test over"));
}

// The same crash with a single replica (dp=1): while it restarts there is
// no READY replica, yet the job is kept and retried once on the restarted
// replica with the same seed; a job queued meanwhile waits and runs after.
TEST(SupervisedSchedulingTest, OnlyReplicaRestartsAndRetriesTheJob) {
  FakeClock clock;
  FakeWorkerLauncher launcher;
  SupervisorOptions options = Options();
  options.index = 0;
  Supervisor supervisor(options, &launcher, &clock);
  SteppedReplica replica(0, &supervisor);
  std::vector<ReplicaHandle*> handles = {&replica};
  Scheduler scheduler(SchedulerOptions(), handles, &clock);
  auto step = [&] {
    supervisor.RunOnce(clock.Now());
    scheduler.RunOnce();
  };
  step();
  launcher.rank(0)->WriteLine("leader 4242");
  step();
  ASSERT_TRUE(scheduler.AnyReplicaServing());

  auto make_job = [&](const std::string& id, int seed) {
    JobSpec spec;
    spec.id = id;
    spec.sequence = seed;
    spec.effective_request.set_prompt("a red square");
    spec.effective_request.set_num_inference_steps(3);
    spec.effective_request.set_width(64);
    spec.effective_request.set_height(32);
    spec.effective_request.set_seed(seed);
    spec.create_time = clock.Now();
    return std::make_shared<Job>(spec);
  };
  auto job = make_job("j-1", 41);
  int terminal = 0;
  job->AddListener([&](const JobEvent& e) { terminal += e.terminal ? 1 : 0; });
  ASSERT_TRUE(scheduler.Submit(job).ok());
  step();
  step();
  ASSERT_EQ(launcher.leader().plans(), 1);
  launcher.rank(1)->Die("was killed by signal 9 (Killed)");
  step();
  launcher.leader().End(absl::CancelledError("Cancelled"));
  step();
  step();
  EXPECT_EQ(supervisor.state(), kFailed);
  EXPECT_TRUE(supervisor.restart_pending());
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(job->retries(), 1);
  EXPECT_EQ(terminal, 0);
  auto later = make_job("j-2", 77);
  ASSERT_TRUE(scheduler.Submit(later).ok());  // admitted while restarting

  clock.Advance(absl::Seconds(1));  // the back-off
  step();
  step();
  launcher.rank(2)->WriteLine("leader 4243");
  step();
  step();
  EXPECT_EQ(replica.Info().restarts(), 1);
  ASSERT_EQ(launcher.leader().plans(), 2);  // the first try, then the retry
  EXPECT_EQ(launcher.leader().plan(1).items(0).seed(), 41);
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(later->state(), dserve::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(terminal, 0);
  scheduler.Stop(absl::UnavailableError("test over"));
}

}  // namespace
}  // namespace dserve::scheduler
