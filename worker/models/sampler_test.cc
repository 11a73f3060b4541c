#include "worker/models/sampler.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dserve::models {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;

TEST(SamplerTest, UnshiftedSigmasAreLinear) {
  EXPECT_THAT(FlowMatchSigmas(4, 1.0),
              ElementsAre(DoubleNear(1.0, 1e-12), DoubleNear(0.75, 1e-12),
                          DoubleNear(0.5, 1e-12), DoubleNear(0.25, 1e-12),
                          DoubleNear(0.0, 1e-12)));
}

TEST(SamplerTest, ShiftedSigmas) {
  // s = 3: σ' = 3σ / (1 + 2σ). σ = 0.75 → 2.25/2.5 = 0.9; 0.5 → 0.75;
  // 0.25 → 0.5.
  EXPECT_THAT(FlowMatchSigmas(4, 3.0),
              ElementsAre(DoubleNear(1.0, 1e-12), DoubleNear(0.9, 1e-12),
                          DoubleNear(0.75, 1e-12), DoubleNear(0.5, 1e-12),
                          DoubleNear(0.0, 1e-12)));
  EXPECT_DOUBLE_EQ(SigmaToTimestep(0.9), 900.0);
}

TEST(SamplerTest, EulerWithExactVelocityLandsOnX0) {
  // For x_σ = (1−σ)x0 + σε the exact velocity is ε − x0 at every σ, so
  // Euler integration is exact.
  at::manual_seed(1);
  at::Tensor x0 = at::randn({2, 3});
  at::Tensor eps = at::randn({2, 3});
  std::vector<double> sigmas = FlowMatchSigmas(7, 3.0);
  at::Tensor x = eps.clone();
  for (size_t i = 0; i + 1 < sigmas.size(); ++i) {
    at::Tensor v = eps - x0;
    EXPECT_TRUE(at::allclose(X0FromVelocity(x, v, sigmas[i]), x0, 1e-5, 1e-5));
    x = EulerStep(x, v, sigmas[i], sigmas[i + 1]);
  }
  EXPECT_TRUE(at::allclose(x, x0, 1e-5, 1e-5));
}

TEST(SamplerTest, VelocityFromX0InvertsX0FromVelocity) {
  at::manual_seed(2);
  at::Tensor x = at::randn({4});
  at::Tensor v = at::randn({4});
  at::Tensor x0 = X0FromVelocity(x, v, 0.3);
  EXPECT_TRUE(at::allclose(VelocityFromX0(x, x0, 0.3), v, 1e-5, 1e-5));
  EXPECT_TRUE(at::all(at::isfinite(VelocityFromX0(x, x0, 0.0))).item<bool>());
}

// A fake model whose output depends on the context (row-wise), and which
// records the batch sizes it is called with.
struct RecordingModel {
  std::vector<int64_t> batch_sizes;
  DenoiseFn fn() {
    return [this](const at::Tensor& x, const at::Tensor& t,
                  const at::Tensor& ctx) {
      batch_sizes.push_back(x.size(0));
      return x * 0.5 + ctx.sum({1, 2}).view({-1, 1}) + t.view({-1, 1}) * 0.01;
    };
  }
};

TEST(SamplerTest, GuidanceOneIsTheConditionalPredictionWithoutUncondPass) {
  at::manual_seed(3);
  at::Tensor x = at::randn({2, 4});
  at::Tensor t = at::tensor({500.0f, 500.0f});
  at::Tensor cond = at::randn({2, 3, 2});
  at::Tensor uncond = at::randn({2, 3, 2});
  RecordingModel model;
  at::Tensor out = GuidedPrediction(model.fn(), x, t, cond, uncond, {1.f, 1.f});
  RecordingModel ref;
  EXPECT_TRUE(at::equal(out, ref.fn()(x, t, cond)));
  EXPECT_THAT(model.batch_sizes, ElementsAre(2));
}

TEST(SamplerTest, GuidanceIsPerItemInOneBatchedCall) {
  at::manual_seed(4);
  at::Tensor x = at::randn({3, 4});
  at::Tensor t = at::tensor({700.0f, 700.0f, 700.0f});
  at::Tensor cond = at::randn({3, 3, 2});
  at::Tensor uncond = at::randn({3, 3, 2});
  RecordingModel model;
  at::Tensor out =
      GuidedPrediction(model.fn(), x, t, cond, uncond, {4.f, 1.f, 2.5f});
  EXPECT_THAT(model.batch_sizes, ElementsAre(5));  // 3 cond + 2 uncond
  RecordingModel ref;
  at::Tensor c = ref.fn()(x, t, cond);
  at::Tensor u = ref.fn()(x, t, uncond);
  EXPECT_TRUE(at::allclose(out[0], u[0] + 4.0 * (c[0] - u[0]), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(out[1], c[1], 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(out[2], u[2] + 2.5 * (c[2] - u[2]), 1e-5, 1e-5));
}

}  // namespace
}  // namespace dserve::models
