#include "worker/follower_loop.h"

#include <memory>

#include "gtest/gtest.h"
#include "worker/models/model_config.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"
#include "worker/plan_codec.h"
#include "worker/rank_loop.h"
#include "worker/testing/broadcast_pipe.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionPlan;

// The leader's side of the protocol, written out by hand: every broadcast a
// real ReplicaLeader::Serve + RankLoop on rank 0 would make.
class ScriptedLeader {
 public:
  explicit ScriptedLeader(testing::BroadcastPipe& pipe) : pipe_(pipe) {}
  void Idle() {
    ASSERT_TRUE(SendCommand(pipe_.leader, Command::kIdle, {}).ok());
  }
  void Shutdown() {
    ASSERT_TRUE(SendCommand(pipe_.leader, Command::kShutdown, {}).ok());
  }
  void Plan(const ExecutionPlan& plan) {
    ASSERT_TRUE(SendCommand(pipe_.leader, Command::kPlan, plan).ok());
  }
  // The control word before a step: 0 continue, 1 cancel.
  void Control(int64_t word) {
    at::Tensor t = at::full({1}, word, at::kLong);
    ASSERT_TRUE(pipe_.leader.Broadcast(t, 0).ok());
  }

 private:
  testing::BroadcastPipe& pipe_;
};

class FollowerLoopTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(1);
    models::PipelineConfig config = models::DefaultModelConfig();
    auto pipeline =
        models::Pipeline::Create(config, models::RandomWeights(config, 3));
    ASSERT_TRUE(pipeline.ok()) << pipeline.status();
    pipeline_ = pipeline->release();
  }
  static void TearDownTestSuite() { delete pipeline_; }

  static ExecutionPlan SmallPlan(int steps) {
    ExecutionPlan plan;
    plan.set_width(16);
    plan.set_height(16);
    plan.set_num_frames(1);
    plan.set_num_inference_steps(steps);
    plan.set_flow_shift(1.0f);
    auto* item = plan.add_items();
    item->set_job_id("j");
    item->set_prompt("a circle");
    item->set_seed(1);
    item->set_guidance_scale(2.0f);
    return plan;
  }

  static models::Pipeline* pipeline_;
};

models::Pipeline* FollowerLoopTest::pipeline_ = nullptr;

TEST_F(FollowerLoopTest, FollowsIdlePlansAndCancelsUntilShutdown) {
  testing::BroadcastPipe pipe;
  ScriptedLeader leader(pipe);
  leader.Idle();
  leader.Plan(SmallPlan(2));  // runs to the end
  leader.Control(0);
  leader.Control(0);
  leader.Idle();
  leader.Plan(SmallPlan(5));  // cancelled before its third step
  leader.Control(0);
  leader.Control(0);
  leader.Control(1);
  leader.Shutdown();

  RankLoop loop(*pipeline_, pipe.follower);
  absl::Status s = FollowLeader(loop, pipe.follower, FollowerOptions());
  EXPECT_TRUE(s.ok()) << s;
  // The follower consumed exactly what the leader sent, in step with it.
  EXPECT_EQ(pipe.pending(), 0u);
  EXPECT_TRUE(loop.healthy());
}

TEST_F(FollowerLoopTest, LeaderGoneIsAnError) {
  testing::BroadcastPipe pipe;
  ScriptedLeader leader(pipe);
  leader.Idle();
  RankLoop loop(*pipeline_, pipe.follower);
  absl::Status s = FollowLeader(loop, pipe.follower, FollowerOptions());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST_F(FollowerLoopTest, LeaderGoneMidPlanIsAnError) {
  testing::BroadcastPipe pipe;
  ScriptedLeader leader(pipe);
  leader.Plan(SmallPlan(3));
  leader.Control(0);
  RankLoop loop(*pipeline_, pipe.follower);
  absl::Status s = FollowLeader(loop, pipe.follower, FollowerOptions());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_FALSE(loop.healthy());
}

TEST_F(FollowerLoopTest, LeaderGoneAfterAStopRequestIsAStop) {
  testing::BroadcastPipe pipe;
  ScriptedLeader leader(pipe);
  leader.Idle();
  RankLoop loop(*pipeline_, pipe.follower);
  FollowerOptions options;
  options.stop_requested = [] { return true; };
  EXPECT_TRUE(FollowLeader(loop, pipe.follower, options).ok());
}

TEST_F(FollowerLoopTest, StopWithoutShutdownLeavesAfterTheGrace) {
  testing::BroadcastPipe pipe;
  ScriptedLeader leader(pipe);
  for (int i = 0; i < 100; ++i) leader.Idle();
  RankLoop loop(*pipeline_, pipe.follower);
  // Each clock reading advances 1 s; the grace is 3 s.
  absl::Time fake = absl::UnixEpoch();
  FollowerOptions options;
  options.stop_requested = [] { return true; };
  options.stop_grace = absl::Seconds(3);
  options.now = [&fake] {
    fake += absl::Seconds(1);
    return fake;
  };
  EXPECT_TRUE(FollowLeader(loop, pipe.follower, options).ok());
  // It left well before the leader's heartbeats ran out.
  EXPECT_GT(pipe.pending(), 90u);
}

TEST_F(FollowerLoopTest, ParentGoneIsAborted) {
  testing::BroadcastPipe pipe;
  ScriptedLeader leader(pipe);
  leader.Idle();
  leader.Idle();
  RankLoop loop(*pipeline_, pipe.follower);
  int checks = 0;
  FollowerOptions options;
  options.parent_alive = [&checks] { return ++checks < 2; };
  EXPECT_EQ(FollowLeader(loop, pipe.follower, options).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(pipe.pending(), 1u);
}

}  // namespace
}  // namespace dserve::worker
