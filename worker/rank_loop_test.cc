#include "worker/rank_loop.h"

#include <memory>

#include "gtest/gtest.h"
#include "worker/models/model_config.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"
#include "parallel/local_communicator.h"
#include "worker/testing/fault_injecting_communicator.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionPlan;

class RankLoopTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(1);
    models::PipelineConfig config = models::DefaultModelConfig();
    models::WeightMap weights = models::RandomWeights(config, 7);
    auto pipeline = models::Pipeline::Create(config, std::move(weights));
    ASSERT_TRUE(pipeline.ok()) << pipeline.status();
    pipeline_ = pipeline->release();
  }
  static void TearDownTestSuite() {
    delete pipeline_;
    pipeline_ = nullptr;
  }

  static ExecutionPlan SmallPlan(int steps) {
    ExecutionPlan plan;
    plan.set_width(32);
    plan.set_height(32);
    plan.set_num_frames(1);
    plan.set_num_inference_steps(steps);
    plan.set_flow_shift(pipeline_->config().default_shift);
    auto* item = plan.add_items();
    item->set_job_id("j1");
    item->set_prompt("a red square zebraish");
    item->set_seed(42);
    item->set_guidance_scale(3.0f);
    return plan;
  }

  static models::Pipeline* pipeline_;
};

models::Pipeline* RankLoopTest::pipeline_ = nullptr;

// Cancels once `cancel_after` steps are done and counts what it saw.
class CountingObserver final : public PlanObserver {
 public:
  explicit CountingObserver(int cancel_after) : cancel_after_(cancel_after) {}
  bool ShouldCancel() override {
    ++asked_;
    return cancel_after_ >= 0 && steps_seen_ >= cancel_after_;
  }
  void OnStepDone(const models::DenoiseState& state, int total,
                  double /*step_ms*/) override {
    ++steps_seen_;
    EXPECT_EQ(state.step, steps_seen_);
    total_ = total;
  }
  int asked_ = 0;
  int steps_seen_ = 0;
  int total_ = 0;

 private:
  int cancel_after_;
};

TEST_F(RankLoopTest, OutputEqualsRunningThePipelineDirectly) {
  const ExecutionPlan plan = SmallPlan(3);
  parallel::LocalCommunicator local;
  testing::FaultInjectingCommunicator comm(local);
  RankLoop loop(*pipeline_, comm);
  CountingObserver observer(/*cancel_after=*/-1);
  absl::StatusOr<PlanOutput> out = loop.RunPlan(plan, &observer);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->steps_done, 3);
  EXPECT_EQ(observer.steps_seen_, 3);
  EXPECT_EQ(observer.asked_, 3);
  EXPECT_EQ(observer.total_, 3);
  // One control word per step.
  EXPECT_EQ(comm.broadcasts(), 3);

  absl::StatusOr<models::GenerationSpec> spec = loop.ResolveSpec(plan);
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<models::DenoiseState> state = pipeline_->Prepare(*spec);
  ASSERT_TRUE(state.ok()) << state.status();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pipeline_->Step(*state).ok());
  at::Tensor expected = pipeline_->Decode(*state);
  ASSERT_TRUE(out->pixels.defined());
  EXPECT_EQ(out->pixels.sizes(), expected.sizes());
  EXPECT_TRUE(at::equal(out->pixels, expected));
  EXPECT_EQ(out->unknown_words, state->unknown_words);
}

TEST_F(RankLoopTest, CancelAtStepKStopsAfterKSteps) {
  for (int k : {0, 2}) {
    parallel::LocalCommunicator local;
    testing::FaultInjectingCommunicator comm(local);
    RankLoop loop(*pipeline_, comm);
    CountingObserver observer(k);
    absl::StatusOr<PlanOutput> out = loop.RunPlan(SmallPlan(5), &observer);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled) << k;
    EXPECT_EQ(observer.steps_seen_, k);
    // The cancel itself travelled as a control word.
    EXPECT_EQ(comm.broadcasts(), k + 1);
    EXPECT_TRUE(loop.healthy());
  }
}

TEST_F(RankLoopTest, FailedCollectiveMarksTheLoopUnhealthy) {
  parallel::LocalCommunicator local;
  testing::FaultInjectingCommunicator comm(local);
  comm.FailFromCall(2);
  RankLoop loop(*pipeline_, comm);
  CountingObserver observer(-1);
  absl::StatusOr<PlanOutput> out = loop.RunPlan(SmallPlan(4), &observer);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(observer.steps_seen_, 2);
  EXPECT_FALSE(loop.healthy());
}

TEST_F(RankLoopTest, TimingsComeFromTheInjectedClock) {
  // Every reading advances 5 ms, so each measured span is exactly 5 ms.
  absl::Time fake = absl::UnixEpoch();
  parallel::LocalCommunicator local;
  testing::FaultInjectingCommunicator comm(local);
  RankLoop loop(*pipeline_, comm, [&fake] {
    fake += absl::Milliseconds(5);
    return fake;
  });
  absl::StatusOr<PlanOutput> out = loop.RunPlan(SmallPlan(2), nullptr);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_DOUBLE_EQ(out->text_encode_ms, 5.0);
  EXPECT_DOUBLE_EQ(out->denoise_ms, 10.0);
  EXPECT_DOUBLE_EQ(out->decode_ms, 5.0);
}

TEST_F(RankLoopTest, ResolveSpecRejectsOtherModelsAndBadShapes) {
  parallel::LocalCommunicator local;
  testing::FaultInjectingCommunicator comm(local);
  RankLoop loop(*pipeline_, comm);
  ExecutionPlan plan = SmallPlan(2);
  plan.set_model("no-such-model");
  EXPECT_EQ(loop.ResolveSpec(plan).status().code(),
            absl::StatusCode::kNotFound);

  plan = SmallPlan(2);
  plan.set_model(pipeline_->config().name);
  EXPECT_TRUE(loop.ResolveSpec(plan).ok());

  plan.set_width(pipeline_->config().max_width + pipeline_->config().size_step);
  absl::Status s = loop.ResolveSpec(plan).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("width"), absl::string_view::npos) << s;

  plan = SmallPlan(2);
  plan.clear_items();
  EXPECT_EQ(loop.ResolveSpec(plan).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Invalid plans never reach a collective.
  EXPECT_EQ(comm.broadcasts(), 0);
}

}  // namespace
}  // namespace dserve::worker
