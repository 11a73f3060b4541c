#include "worker/cost_calibration.h"

#include <iostream>
#include <memory>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "parallel/local_communicator.h"
#include "worker/models/model_config.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"
#include "worker/testing/fault_injecting_communicator.h"
#include <ATen/Parallel.h>

namespace dserve::worker {
namespace {

TEST(CostCalibrationTest, GeometryOfBothModelKinds) {
  const common::TokenGeometry tiny =
      TokenGeometryOf(models::DefaultModelConfig());
  EXPECT_EQ(tiny.pixels_per_token, 4);
  EXPECT_EQ(tiny.frames_per_latent_frame, 1);
  EXPECT_EQ(tiny.frames_per_token, 1);

  models::DiTConfig dit;  // Wan's patch (1, 2, 2)
  const common::TokenGeometry wan =
      TokenGeometryOf(models::WanPipelineConfig(dit));
  EXPECT_EQ(wan.pixels_per_token, 16);
  EXPECT_EQ(wan.frames_per_latent_frame, 4);
  EXPECT_EQ(wan.frames_per_token, 1);
  // 832x480x81: 21 latent frames of 52x30 tokens.
  EXPECT_EQ(common::TokenCount(wan, 832, 480, 81), 21 * 52 * 30);
}

TEST(CostCalibrationTest, PlansAreSquareFramesWithinTheModelsLimits) {
  models::PipelineConfig config = models::DefaultModelConfig();
  dserve::internal::v1::ExecutionPlan plan = CalibrationPlan(config, 1024);
  EXPECT_EQ(plan.width(), 128);
  EXPECT_EQ(plan.height(), 128);
  EXPECT_EQ(plan.num_frames(), 1);
  EXPECT_EQ(plan.items(0).guidance_scale(), 1.0f);
  // Clipped to the largest frame, and rounded up to size_step.
  config.max_width = 64;
  config.max_height = 64;
  plan = CalibrationPlan(config, 1024);
  EXPECT_EQ(plan.width(), 64);
  EXPECT_EQ(plan.height(), 64);
  config.size_step = 24;
  config.max_width = config.max_height = 240;
  plan = CalibrationPlan(config, 100);  // 10 tokens = 40 px -> 48
  EXPECT_EQ(plan.width(), 48);
}

TEST(CostCalibrationTest, MeasuresAPositiveSuperlinearCostOnTheRealLoop) {
  at::set_num_threads(1);
  models::PipelineConfig config = models::DefaultModelConfig();
  auto pipeline =
      models::Pipeline::Create(config, models::RandomWeights(config, 7));
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  parallel::LocalCommunicator local;
  testing::FaultInjectingCommunicator comm(local);
  RankLoop loop(**pipeline, comm);
  CostCalibrationOptions options;
  options.guided_evaluations = 2;
  // The reported duration comes from the injected clock (read at the start
  // and the end): 1 s per reading. Wall time is a benchmark's business.
  absl::Time fake = absl::UnixEpoch();
  options.now = [&fake] { return fake += absl::Seconds(1); };
  absl::StatusOr<dserve::v1::CostModel> cost =
      CalibrateCost(config, loop, comm, options);
  ASSERT_TRUE(cost.ok()) << cost.status();
  std::cout << "calibration: " << cost->ShortDebugString() << std::endl;
  EXPECT_TRUE(loop.healthy());
  EXPECT_EQ(cost->pixels_per_token(), 4);
  ASSERT_EQ(cost->calibration_tokens_size(), 2);
  EXPECT_EQ(cost->calibration_tokens(0), 256);
  EXPECT_EQ(cost->calibration_tokens(1), 1024);
  EXPECT_EQ(cost->guided_evaluations(), 2);
  EXPECT_EQ(cost->default_max_job_seconds(), 600);
  EXPECT_GE(cost->seconds_per_token(), 0);
  EXPECT_GE(cost->seconds_per_token_squared(), 0);
  const common::StepCost step{cost->seconds_per_token(),
                              cost->seconds_per_token_squared(), 2};
  // One evaluation of 1024 tokens costs more than one of 256: the fit
  // reproduces the measured growth, and extrapolates at least linearly.
  EXPECT_GT(common::EvaluationSeconds(step, 1024),
            common::EvaluationSeconds(step, 256));
  EXPECT_GE(common::EvaluationSeconds(step, 69632),
            common::EvaluationSeconds(step, 1024) * 68);
  // Two plans went out as PLAN commands (header + bytes) and ran 3 steps
  // each (one control word per step).
  EXPECT_EQ(comm.broadcasts(), 2 * 2 + 2 * 3);
  EXPECT_EQ(cost->calibration_ms(), 1000);
}

}  // namespace
}  // namespace dserve::worker
