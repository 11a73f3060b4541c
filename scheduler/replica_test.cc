#include "scheduler/replica.h"

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::scheduler {
namespace {

using ::testing::HasSubstr;

// The fake worker speaks dserve_worker's process protocol without LibTorch
// (testing/fake_worker_main.cc). Bazel runs tests inside their runfiles
// tree, where data dependencies sit at their workspace paths.
std::string FakeWorker() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string relative = "scheduler/testing/fake_worker";
  return srcdir == nullptr ? relative
                           : std::string(srcdir) + "/dserve/" + relative;
}

LocalReplicaOptions Options(int cfg, std::vector<std::string> extra = {}) {
  LocalReplicaOptions options;
  options.index = 3;
  options.worker_binary = FakeWorker();
  options.mesh.dp = 4;
  options.mesh.cfg = cfg;
  options.startup_timeout = absl::Seconds(20);
  options.extra_worker_args = std::move(extra);
  return options;
}

template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return done();
}

dserve::internal::v1::ExecutionPlan Plan(int steps) {
  dserve::internal::v1::ExecutionPlan plan;
  plan.set_num_inference_steps(steps);
  auto* item = plan.add_items();
  item->set_job_id("j-7");
  item->set_seed(11);
  return plan;
}

// Collects one plan's callbacks.
struct PlanRecorder {
  absl::Mutex mu;
  int steps = 0;
  bool got_done_event = false;
  std::string media;
  absl::Notification finished;
  absl::Status status;

  ReplicaHandle::EventCallback OnEvent() {
    return [this](const dserve::internal::v1::ExecutionEvent& e) {
      absl::MutexLock lock(&mu);
      if (e.has_step()) ++steps;
      if (e.has_done()) {
        got_done_event = true;
        media = e.done().items(0).media(0).data();
      }
    };
  }
  ReplicaHandle::DoneCallback OnDone() {
    return [this](absl::Status s) {
      status = std::move(s);
      finished.Notify();
    };
  }
};

bool IsReady(const LocalReplica& r) {
  return r.Info().state() == dserve::v1::REPLICA_STATE_READY;
}

TEST(LocalReplicaTest, StartsRunsAndShutsDown) {
  LocalReplica replica(Options(/*cfg=*/2));
  std::atomic<int> changes{0};
  replica.SetStateObserver([&] { ++changes; });
  EXPECT_EQ(replica.Info().state(), dserve::v1::REPLICA_STATE_STARTING);
  replica.Start();
  ASSERT_TRUE(Eventually([&] { return IsReady(replica); }))
      << dserve::v1::ReplicaState_Name(replica.Info().state());
  const dserve::v1::ReplicaInfo info = replica.Info();
  EXPECT_EQ(info.index(), 3);
  EXPECT_EQ(info.world_size(), 2);
  // The deployment's whole layout (dp = replicas), every field set.
  EXPECT_EQ(info.mesh().dp(), 4);
  EXPECT_EQ(info.mesh().cfg(), 2);
  EXPECT_EQ(info.mesh().ulysses(), 1);
  EXPECT_EQ(info.pids_size(), 2);
  EXPECT_THAT(info.leader_address(), HasSubstr("127.0.0.1:"));
  ASSERT_EQ(replica.Models().size(), 1u);
  EXPECT_EQ(replica.Models()[0].name(), "fake-model");
  EXPECT_GE(changes.load(), 1);

  PlanRecorder rec;
  ASSERT_TRUE(replica.Run(Plan(4), rec.OnEvent(), rec.OnDone()).ok());
  EXPECT_EQ(replica.Info().state(), dserve::v1::REPLICA_STATE_BUSY);
  EXPECT_EQ(replica.Info().current_job_id(), "j-7");
  EXPECT_FALSE(replica.Run(Plan(1), nullptr, nullptr).ok());  // Busy.
  ASSERT_TRUE(rec.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_TRUE(rec.status.ok()) << rec.status;
  EXPECT_EQ(rec.steps, 4);
  EXPECT_TRUE(rec.got_done_event);
  EXPECT_EQ(rec.media, "seed=11");
  EXPECT_EQ(replica.Info().jobs_completed(), 1);
  EXPECT_TRUE(IsReady(replica));

  replica.Shutdown(absl::Seconds(5));
  for (int pid : info.pids()) EXPECT_EQ(kill(pid, 0), -1) << pid;
}

// A plan the leader refuses is the request's error, not a replica fault:
// the replica is READY again at once (no wait for a crash diagnosis).
TEST(LocalReplicaTest, RefusedPlanLeavesTheReplicaReadyAtOnce) {
  LocalReplica replica(Options(1));
  replica.Start();
  ASSERT_TRUE(Eventually([&] { return IsReady(replica); }));
  PlanRecorder rec;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(replica.Run(Plan(0), rec.OnEvent(), rec.OnDone()).ok());
  ASSERT_TRUE(rec.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(rec.status.code(), absl::StatusCode::kInvalidArgument)
      << rec.status;
  EXPECT_TRUE(IsReady(replica));
  // The crash diagnosis wait is 2 s; a refusal returns well before.
  EXPECT_LT(took, absl::Milliseconds(1500));
  EXPECT_EQ(replica.Info().restarts(), 0);
  PlanRecorder next;
  ASSERT_TRUE(replica.Run(Plan(2), next.OnEvent(), next.OnDone()).ok());
  ASSERT_TRUE(next.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_TRUE(next.status.ok()) << next.status;
}

TEST(LocalReplicaTest, CancelStopsThePlan) {
  LocalReplica replica(Options(1, {"--fake_step_ms=50"}));
  replica.Start();
  ASSERT_TRUE(Eventually([&] { return IsReady(replica); }));
  PlanRecorder rec;
  ASSERT_TRUE(replica.Run(Plan(200), rec.OnEvent(), rec.OnDone()).ok());
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&rec.mu);
    return rec.steps >= 2;
  }));
  replica.Cancel();
  ASSERT_TRUE(rec.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_EQ(rec.status.code(), absl::StatusCode::kCancelled) << rec.status;
  EXPECT_LT(rec.steps, 200);
  EXPECT_TRUE(IsReady(replica));
}

TEST(LocalReplicaTest, DeadRankFailsTheReplicaAndItsPlan) {
  LocalReplicaOptions options = Options(2, {"--fake_step_ms=50"});
  // Stays FAILED, so the state can be checked without racing the restart.
  options.restart = false;
  LocalReplica replica(options);
  replica.Start();
  ASSERT_TRUE(Eventually([&] { return IsReady(replica); }));
  const dserve::v1::ReplicaInfo info = replica.Info();
  PlanRecorder rec;
  ASSERT_TRUE(replica.Run(Plan(200), rec.OnEvent(), rec.OnDone()).ok());
  ASSERT_EQ(kill(info.pids(1), SIGKILL), 0);
  ASSERT_TRUE(rec.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_EQ(rec.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(rec.status.message(),
              HasSubstr(absl::StrCat("replica 3: rank 1 (pid ", info.pids(1),
                                     ") was killed by signal 9")));
  EXPECT_EQ(replica.Info().state(), dserve::v1::REPLICA_STATE_FAILED);
  // The surviving rank was torn down too.
  EXPECT_TRUE(Eventually([&] { return kill(info.pids(0), 0) == -1; }));
}

TEST(LocalReplicaTest, RestartsAfterADeadRankWithDoublingBackOff) {
  LocalReplicaOptions options = Options(2, {"--fake_step_ms=20"});
  options.restart_backoff = absl::Milliseconds(200);
  options.restart_backoff_max = absl::Seconds(5);
  LocalReplica replica(options);
  replica.Start();
  ASSERT_TRUE(Eventually([&] { return IsReady(replica); }));
  for (int crash = 1; crash <= 2; ++crash) {
    const dserve::v1::ReplicaInfo before = replica.Info();
    const absl::Time killed = absl::Now();
    // Crash 1 kills a follower, crash 2 the leader.
    ASSERT_EQ(kill(before.pids(crash == 1 ? 1 : 0), SIGKILL), 0);
    ASSERT_TRUE(Eventually([&] {
      const dserve::v1::ReplicaInfo info = replica.Info();
      return info.restarts() == crash &&
             info.state() == dserve::v1::REPLICA_STATE_READY;
    })) << "crash " << crash;
    const absl::Duration took = absl::Now() - killed;
    // Two crashes in a row: 200 ms, then 400 ms of back-off.
    EXPECT_GE(took, options.restart_backoff * (1 << (crash - 1)))
        << "crash " << crash;
    const dserve::v1::ReplicaInfo after = replica.Info();
    ASSERT_EQ(after.pids_size(), 2);
    EXPECT_NE(after.pids(0), before.pids(0));
    EXPECT_NE(after.pids(1), before.pids(1));
    // The old ranks are gone.
    EXPECT_TRUE(Eventually([&] { return kill(before.pids(0), 0) == -1; }));
  }
  // The restarted replica runs plans.
  PlanRecorder rec;
  ASSERT_TRUE(replica.Run(Plan(3), rec.OnEvent(), rec.OnDone()).ok());
  ASSERT_TRUE(rec.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_TRUE(rec.status.ok()) << rec.status;
}

TEST(LocalReplicaTest, RankExitingBeforeReadyFailsStartUp) {
  LocalReplica replica(Options(1, {"--fake_scenario=exit_before_ready"}));
  replica.Start();
  ASSERT_TRUE(Eventually([&] {
    return replica.Info().state() == dserve::v1::REPLICA_STATE_FAILED;
  }));
  EXPECT_TRUE(replica.Models().empty());
}

// Every served model reaches every rank as --model=NAME=DIR (here the fake
// worker reports the names it was given).
TEST(LocalReplicaTest, PassesEveryModelToTheWorkers) {
  LocalReplicaOptions options = Options(1);
  options.models = {{"tiny", "", ""}, {"wan", "/m/wan", ""}};
  options.default_model = "tiny";
  LocalReplica replica(options);
  replica.Start();
  ASSERT_TRUE(Eventually([&] { return IsReady(replica); }));
  const std::vector<dserve::v1::ModelInfo> models = replica.Models();
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].name(), "tiny");
  EXPECT_TRUE(models[0].is_default());
  EXPECT_EQ(models[1].name(), "wan");
}

// A worker that cannot load a model says why on its ready pipe; the
// replica's first start fails with that reason (FAILED_PRECONDITION) and
// tells its owner, which stops the server (server.h).
TEST(LocalReplicaTest, ModelLoadErrorFailsTheFirstStartWithTheReason) {
  LocalReplicaOptions options = Options(1, {"--fake_scenario=model_error"});
  absl::Notification told;
  absl::Status reported;
  options.on_first_start_failed = [&](const absl::Status& s) {
    reported = s;
    told.Notify();
  };
  LocalReplica replica(options);
  replica.Start();
  ASSERT_TRUE(told.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_EQ(reported.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(reported.message(),
            "replica 3: rank 0 refused to start: model 'wan' (/m/wan) did not "
            "load: /m/wan/config.json: bad json");
  EXPECT_TRUE(Eventually([&] {
    return replica.Info().state() == dserve::v1::REPLICA_STATE_FAILED;
  }));
}

TEST(LocalReplicaTest, ShutdownDuringStartUpDoesNotWaitForTheTimeout) {
  LocalReplica replica(Options(1, {"--fake_scenario=hang_before_ready"}));
  replica.Start();
  ASSERT_TRUE(Eventually([&] { return replica.Info().pids_size() == 1; }));
  const int pid = replica.Info().pids(0);
  const absl::Time start = absl::Now();
  replica.Shutdown(absl::Seconds(1));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));  // Startup timeout: 20 s.
  EXPECT_EQ(replica.Info().state(), dserve::v1::REPLICA_STATE_DRAINING);
  EXPECT_EQ(kill(pid, 0), -1);
}

TEST(LocalReplicaTest, MissingBinaryFailsStartUp) {
  LocalReplicaOptions options = Options(1);
  options.worker_binary = "/nonexistent/dserve_worker";
  LocalReplica replica(options);
  replica.Start();
  ASSERT_TRUE(Eventually([&] {
    return replica.Info().state() == dserve::v1::REPLICA_STATE_FAILED;
  }));
}

}  // namespace
}  // namespace dserve::scheduler
