#include "common/cost_estimate.h"

#include <cmath>
#include <string>

#include "gtest/gtest.h"

namespace dserve::common {
namespace {

constexpr TokenGeometry kPixelModel{4, 1, 1};  // built-in: patch 4, no VAE
constexpr TokenGeometry kWan{16, 4, 1};        // VAE 8x, patch 2, causal 4x

TEST(CostEstimateTest, TokenCounts) {
  struct Case {
    TokenGeometry geometry;
    int width, height, frames;
    int64_t tokens;
  } cases[] = {
      {kPixelModel, 32, 32, 1, 64},
      {kPixelModel, 256, 256, 1, 4096},
      {kPixelModel, 256, 256, 6, 24576},
      {kPixelModel, 256, 256, 17, 69632},
      {kPixelModel, 4, 4, 1, 1},
      {kWan, 832, 480, 81, 21 * 52 * 30},
      {kWan, 832, 480, 1, 52 * 30},
      {kWan, 832, 480, 5, 2 * 52 * 30},
      {TokenGeometry{4, 1, 2}, 8, 8, 3, 2 * 4},  // patch depth 2: ceil(3/2)
      {kPixelModel, 0, 0, 0, 1},                 // never below 1
  };
  for (const Case& c : cases) {
    EXPECT_EQ(TokenCount(c.geometry, c.width, c.height, c.frames), c.tokens)
        << c.width << "x" << c.height << "x" << c.frames;
  }
}

TEST(CostEstimateTest, JobSecondsTable) {
  const StepCost cost{1e-4, 1e-8, 2};
  struct Case {
    JobShape shape;
    double seconds;
  } cases[] = {
      // 64 tokens: 64e-4 + 4096e-8 per evaluation.
      {{32, 32, 1, 20, true}, 20 * 2 * (64e-4 + 4096e-8)},
      {{32, 32, 1, 20, false}, 20 * 1 * (64e-4 + 4096e-8)},
      // 24576 tokens: the quadratic term dominates.
      {{256, 256, 6, 20, true}, 20 * 2 * (2.4576 + 6.03979776)},
      {{256, 256, 17, 200, true}, 200 * 2 * (6.9632 + 48.48615424)},
      {{32, 32, 1, 0, true}, 0},
  };
  for (const Case& c : cases) {
    EXPECT_NEAR(EstimateJobSeconds(kPixelModel, cost, c.shape), c.seconds,
                1e-6 * std::max(1.0, c.seconds))
        << c.shape.width << "x" << c.shape.height << "x" << c.shape.num_frames
        << " steps " << c.shape.num_steps;
  }
  // A CFG-parallel mesh runs both branches at once.
  const StepCost cfg_parallel{1e-4, 1e-8, 1};
  EXPECT_NEAR(EstimateJobSeconds(kPixelModel, cfg_parallel,
                                 {32, 32, 1, 20, true}),
              20 * (64e-4 + 4096e-8), 1e-9);
}

TEST(CostEstimateTest, FitRecoversExactCoefficients) {
  const double a = 3e-5, b = 2e-8;
  auto at = [&](double t) { return a * t + b * t * t; };
  absl::StatusOr<StepCost> fit = FitStepCost(256, at(256), 1024, at(1024));
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_NEAR(fit->seconds_per_token, a, 1e-12);
  EXPECT_NEAR(fit->seconds_per_token_squared, b, 1e-15);
}

TEST(CostEstimateTest, NoisyFitNeverGoesNegativeNorUnderestimates) {
  // The larger size ran faster per token than the smaller (noise): no
  // quadratic term, and the linear one covers both timings.
  absl::StatusOr<StepCost> fit = FitStepCost(256, 0.02, 1024, 0.06);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->seconds_per_token_squared, 0);
  EXPECT_GE(EvaluationSeconds(*fit, 256), 0.02 - 1e-12);
  EXPECT_GE(EvaluationSeconds(*fit, 1024), 0.06 - 1e-12);
  // Super-quadratic growth: no linear term, the quadratic covers both.
  fit = FitStepCost(256, 0.001, 1024, 0.1);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->seconds_per_token, 0);
  EXPECT_GT(fit->seconds_per_token_squared, 0);
  EXPECT_GE(EvaluationSeconds(*fit, 256), 0.001 - 1e-12);
  EXPECT_GE(EvaluationSeconds(*fit, 1024), 0.1 - 1e-12);
}

TEST(CostEstimateTest, FitRefusesBadInput) {
  EXPECT_EQ(FitStepCost(1024, 0.1, 256, 0.01).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FitStepCost(0, 0.1, 256, 0.01).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FitStepCost(256, 0, 1024, 0.01).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FitStepCost(256, 0.01, 1024, NAN).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CostEstimateTest, CheckJobCostNamesEstimateAndBudget) {
  const StepCost cost{1e-4, 1e-8, 2};
  const JobShape big{256, 256, 17, 200, true};
  absl::Status s = CheckJobCost(kPixelModel, cost, big, 600);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  const std::string m(s.message());
  // 200 * 2 * 55.449 s = 22180 s.
  EXPECT_NE(m.find("estimated cost 22180 s"), std::string::npos) << m;
  EXPECT_NE(m.find("--max_job_seconds=600 s"), std::string::npos) << m;
  EXPECT_NE(m.find("69632 tokens"), std::string::npos) << m;
  EXPECT_NE(m.find("200 steps x 2 evaluations"), std::string::npos) << m;
  // Within budget, and no budget at all.
  EXPECT_TRUE(CheckJobCost(kPixelModel, cost, {32, 32, 1, 20, true}, 600).ok());
  EXPECT_TRUE(CheckJobCost(kPixelModel, cost, big, 0).ok());
  // The boundary is inclusive.
  const double exact = EstimateJobSeconds(kPixelModel, cost, big);
  EXPECT_TRUE(CheckJobCost(kPixelModel, cost, big, exact).ok());
}

}  // namespace
}  // namespace dserve::common
