#include "worker/models/unipc_solver.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "worker/models/flow_schedule.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

at::Tensor Randn(int64_t seed) {
  at::manual_seed(seed);
  return at::randn({2, 3, 4}, at::kDouble);
}

// With a perfect x0 predictor (m_i = x0 at every step) the flow ODE's
// solution is x_σ = (1−σ)·x0 + σ·ε, and every UniPC branch (first order,
// order 2 predictor, both corrector orders, σ = 0 end) must stay on it.
TEST(UniPCSolverTest, ExactOnTheStraightTrajectory) {
  for (int n : {1, 2, 3, 4, 10}) {
    const std::vector<double> sigmas = WanFlowSchedule(n, 5.0).sigmas;
    const at::Tensor x0 = Randn(1), eps = Randn(2);
    at::Tensor x = (1 - sigmas[0]) * x0 + sigmas[0] * eps;
    UniPCHistory h;
    for (int i = 0; i < n; ++i) {
      x = UniPCStep(sigmas, i, x, x0, h);
      at::Tensor want = (1 - sigmas[i + 1]) * x0 + sigmas[i + 1] * eps;
      EXPECT_LT((x - want).abs().max().item<double>(), 1e-12)
          << "n " << n << " step " << i;
    }
    EXPECT_EQ(h.steps_done, n);
  }
}

// A scalar ODE dx/dσ = v with an exact x0 that drifts linearly in σ:
// x0(σ) = a + bσ, x = (1−σ)x0(σ) + σε, so v depends on σ only. The solver's
// global error must shrink about quadratically with the step count (order
// 2), not linearly. (An independent f64 Python transcription of Wan's
// scheduler gives the same errors: 4.72e-4 at N = 40, 1.40e-4 at N = 80.)
TEST(UniPCSolverTest, SecondOrderConvergence) {
  const double a = 0.3, b = -0.7, eps = 1.1;
  auto x0_of = [&](double s) { return a + b * s; };
  auto run = [&](int n) {
    const std::vector<double> sigmas = WanFlowSchedule(n, 1.0).sigmas;
    at::Tensor x = at::full({1}, (1 - sigmas[0]) * x0_of(sigmas[0]) +
                                     sigmas[0] * eps,
                            at::kDouble);
    UniPCHistory h;
    for (int i = 0; i < n; ++i) {
      // Along the true path x_σ = (1−σ)(a+bσ) + σε, the model's x0 estimate
      // at the current sample is the path's x0(σ) shifted by the distance
      // of x from the path (the velocity field is that of the path).
      const double s = sigmas[i];
      const double v = eps - x0_of(s) + (1 - s) * b;  // d path / dσ
      at::Tensor m = x - s * v;
      x = UniPCStep(sigmas, i, x, m, h);
    }
    return x.item<double>();
  };
  // At σ = 0 the path ends at a. Error ratio for 2x the steps: about 4 for
  // a second-order method (3.4 measured; a first-order one gives about 2).
  // Small N is not yet asymptotic (the schedule starts at 0.999, not 1).
  const double e1 = std::abs(run(40) - a), e2 = std::abs(run(80) - a);
  EXPECT_GT(e2, 0.0);
  EXPECT_GT(e1 / e2, 2.8) << e1 << " " << e2;
}

TEST(UniPCSolverTest, RejectsOutOfOrderSteps) {
  const std::vector<double> sigmas = WanFlowSchedule(3, 5.0).sigmas;
  UniPCHistory h;
  const at::Tensor x = Randn(3);
  EXPECT_THROW(UniPCStep(sigmas, 1, x, x, h), c10::Error);
  EXPECT_THROW(UniPCStep(sigmas, 3, x, x, h), c10::Error);
}

}  // namespace
}  // namespace dserve::models
