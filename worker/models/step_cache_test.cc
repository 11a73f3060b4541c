#include "worker/models/step_cache.h"

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include "worker/models/model_config.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"

namespace dserve::models {
namespace {

using ::testing::HasSubstr;

StepCacheConfig On(double threshold, int warmup, int max_in_a_row) {
  StepCacheConfig c;
  c.enabled = true;
  c.threshold = threshold;
  c.warmup_steps = warmup;
  c.max_reused_in_a_row = max_in_a_row;
  return c;
}

StepCacheConfig Final(StepCacheConfig c, int final_computed_steps) {
  c.final_computed_steps = final_computed_steps;
  return c;
}

struct PolicyCase {
  const char* name;
  StepCacheConfig config;
  StepCacheSnapshot snapshot;
  bool reuse;
};

TEST(StepCachePolicyTest, Table) {
  const StepCacheConfig base = On(0.1, 2, 2);
  // step, num_steps, have_cache, accumulated, reused_in_a_row
  const std::vector<PolicyCase> cases = {
      {"reuses under threshold", base, {5, 20, true, 0.05, 0}, true},
      {"threshold is strict", base, {5, 20, true, 0.1, 0}, false},
      {"over threshold", base, {5, 20, true, 0.2, 0}, false},
      {"warmup step 0", base, {0, 20, true, 0.0, 0}, false},
      {"warmup step 1", base, {1, 20, true, 0.0, 0}, false},
      {"first step after warmup", base, {2, 20, true, 0.0, 0}, true},
      {"one reused before", base, {6, 20, true, 0.05, 1}, true},
      {"max in a row reached", base, {7, 20, true, 0.05, 2}, false},
      {"max in a row 0 = never", On(0.1, 0, 0), {5, 20, true, 0.0, 0},
       false},
      {"no cached residual", base, {5, 20, false, 0.0, 0}, false},
      {"last step computed", base, {19, 20, true, 0.0, 0}, false},
      {"second to last may reuse", base, {18, 20, true, 0.0, 0}, true},
      {"threshold 0 never", On(0.0, 0, 5), {5, 20, true, 0.0, 0}, false},
      {"disabled", StepCacheConfig{}, {5, 20, true, 0.0, 0}, false},
      {"final 3: step 17 computed", Final(base, 3), {17, 20, true, 0.0, 0},
       false},
      {"final 3: step 16 may reuse", Final(base, 3), {16, 20, true, 0.0, 0},
       true},
      {"final 0 counts as 1", Final(base, 0), {18, 20, true, 0.0, 0}, true},
      {"final 0 still computes the last", Final(base, 0),
       {19, 20, true, 0.0, 0}, false},
  };
  for (const PolicyCase& c : cases) {
    EXPECT_EQ(ShouldReuseStep(c.config, c.snapshot), c.reuse) << c.name;
  }
}

TEST(StepCacheTest, RelativeL1) {
  at::Tensor prev = at::tensor({1.0f, -2.0f, 3.0f});
  at::Tensor cur = at::tensor({1.5f, -2.0f, 2.0f});
  L1Parts parts = RelativeL1Parts(cur, prev);
  EXPECT_DOUBLE_EQ(parts.diff, 1.5);
  EXPECT_DOUBLE_EQ(parts.base, 6.0);
  EXPECT_DOUBLE_EQ(RelativeL1(parts), 0.25);
  // Sharded parts add up to the whole.
  L1Parts a = RelativeL1Parts(cur.narrow(0, 0, 1), prev.narrow(0, 0, 1));
  L1Parts b = RelativeL1Parts(cur.narrow(0, 1, 2), prev.narrow(0, 1, 2));
  EXPECT_DOUBLE_EQ(RelativeL1({a.diff + b.diff, a.base + b.base}), 0.25);
  EXPECT_EQ(RelativeL1({0, 0}), 0.0);
  EXPECT_EQ(RelativeL1({1, 0}), std::numeric_limits<double>::infinity());
}

TEST(StepCacheTest, ReusedResidualExtrapolatesFromTheLastTwoComputed) {
  StepCacheConfig full = On(0.1, 0, 2);
  full.extrapolation = 1.0;
  StepCacheConfig half = full;
  half.extrapolation = 0.5;
  StepCacheConfig plain = full;
  plain.extrapolation = 0.0;
  const at::Tensor r2 = at::tensor({1.0f, 2.0f, -1.0f});
  const at::Tensor r4 = at::tensor({2.0f, 2.0f, 0.0f});

  // One computed residual: reused as is.
  StepCacheState one;
  CacheRemainingResidual(full, r2, 2, one);
  EXPECT_FALSE(one.prev_remaining_residual.defined());
  EXPECT_TRUE(at::equal(ReusedResidual(full, 3, one), r2));

  // Computed at steps 2 and 4 (gap 2): step 5 is k = 1, step 6 k = 2.
  StepCacheState s;
  CacheRemainingResidual(full, r2, 2, s);
  CacheRemainingResidual(full, r4, 4, s);
  EXPECT_EQ(s.prev_remaining_step, 2);
  EXPECT_EQ(s.remaining_step, 4);
  EXPECT_TRUE(at::allclose(ReusedResidual(full, 5, s),
                           at::tensor({2.5f, 2.0f, 0.5f})));
  EXPECT_TRUE(at::allclose(ReusedResidual(full, 6, s),
                           at::tensor({3.0f, 2.0f, 1.0f})));
  EXPECT_TRUE(at::allclose(ReusedResidual(half, 5, s),
                           at::tensor({2.25f, 2.0f, 0.25f})));
  EXPECT_TRUE(at::equal(ReusedResidual(plain, 5, s), r4));
  // In the residual's own dtype (and device).
  EXPECT_EQ(ReusedResidual(half, 5, s).scalar_type(), at::kFloat);
  EXPECT_EQ(ReusedResidual(half, 5, s).device(), r4.device());
  // Elementwise: a shard's extrapolation is the shard of the whole's.
  StepCacheState shard;
  CacheRemainingResidual(half, r2.narrow(0, 1, 2), 2, shard);
  CacheRemainingResidual(half, r4.narrow(0, 1, 2), 4, shard);
  EXPECT_TRUE(at::equal(ReusedResidual(half, 5, shard),
                        ReusedResidual(half, 5, s).narrow(0, 1, 2)));

  // Extrapolation 0 keeps no second residual.
  StepCacheState kept;
  CacheRemainingResidual(plain, r2, 2, kept);
  CacheRemainingResidual(plain, r4, 4, kept);
  EXPECT_FALSE(kept.prev_remaining_residual.defined());
  EXPECT_TRUE(at::equal(ReusedResidual(full, 5, kept), r4));

  // A previous residual of another shape is not extrapolated from.
  StepCacheState other;
  CacheRemainingResidual(full, at::ones({2}), 2, other);
  CacheRemainingResidual(full, r4, 4, other);
  EXPECT_TRUE(at::equal(ReusedResidual(full, 5, other), r4));
}

class StepCachePipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PipelineConfig config = DefaultModelConfig();
    WeightMap w = RandomWeights(config, 0);
    auto p = Pipeline::Create(std::move(config), std::move(w));
    ASSERT_TRUE(p.ok()) << p.status();
    pipeline_ = p->release();
  }
  static void TearDownTestSuite() { delete pipeline_; }

  static GenerationSpec Spec(StepCacheConfig cache, int steps) {
    GenerationSpec s;
    s.width = 32;
    s.height = 32;
    s.num_steps = steps;
    s.flow_shift = 3.0f;
    s.step_cache = cache;
    // Two items, one guided and one not: the CFG rows and the batch share
    // one decision.
    s.items = {{"a red circle at the top", "", 11, 4.0f},
               {"blue square", "", 12, 1.0f}};
    return s;
  }

  static DenoiseState Run(const GenerationSpec& spec) {
    absl::StatusOr<DenoiseState> s = pipeline_->Prepare(spec);
    EXPECT_TRUE(s.ok()) << s.status();
    for (int i = 0; i < spec.num_steps; ++i) {
      absl::Status st = pipeline_->Step(*s);
      EXPECT_TRUE(st.ok()) << st;
    }
    return *std::move(s);
  }

  static Pipeline* pipeline_;
};
Pipeline* StepCachePipelineTest::pipeline_ = nullptr;

TEST_F(StepCachePipelineTest, ThresholdZeroIsBitIdenticalToOff) {
  DenoiseState off = Run(Spec(StepCacheConfig{}, 8));
  DenoiseState zero = Run(Spec(On(0.0, 0, 100), 8));
  EXPECT_TRUE(at::equal(off.latents, zero.latents));
  EXPECT_TRUE(at::equal(pipeline_->Decode(off), pipeline_->Decode(zero)));
  EXPECT_EQ(zero.step_cache.steps_computed, 8);
  EXPECT_EQ(zero.step_cache.steps_reused, 0);
  // Off measures nothing.
  EXPECT_EQ(off.step_cache.steps_computed, 0);
}

TEST_F(StepCachePipelineTest, ReusesStepsWithinBoundsAndStaysClose) {
  const int steps = 12;
  DenoiseState off = Run(Spec(StepCacheConfig{}, steps));
  DenoiseState cached = Run(Spec(On(10.0, 2, 2), steps));
  // Any change passes the threshold: warmup 0,1 computed, then reuse 2,
  // compute 1, ... and the last step computed: steps 2,3 5,6 8,9 reused.
  EXPECT_EQ(cached.step_cache.steps_reused, 6);
  EXPECT_EQ(cached.step_cache.steps_computed, 6);
  EXPECT_FALSE(at::equal(off.latents, cached.latents));
  at::Tensor a = pipeline_->Decode(off);
  at::Tensor b = pipeline_->Decode(cached);
  EXPECT_TRUE(at::isfinite(b).all().item<bool>());
  const double mse = (a - b).pow(2).mean().item<double>();
  EXPECT_GT(10 * std::log10(1.0 / std::max(mse, 1e-20)), 15.0);

  // A moderate threshold reuses fewer steps than the unbounded one.
  DenoiseState some = Run(Spec(On(0.05, 2, 2), steps));
  EXPECT_LE(some.step_cache.steps_reused, 6);
  EXPECT_EQ(some.step_cache.steps_reused + some.step_cache.steps_computed,
            steps);
}

TEST_F(StepCachePipelineTest, ExtrapolationChangesOnlyReusedSteps) {
  const int steps = 12;
  const at::Tensor reference =
      pipeline_->Decode(Run(Spec(StepCacheConfig{}, steps)));
  StepCacheConfig plain = On(10.0, 2, 2);
  plain.extrapolation = 0;
  DenoiseState last = Run(Spec(plain, steps));
  EXPECT_FALSE(last.step_cache.prev_remaining_residual.defined());
  for (double w : {0.5, 1.0}) {
    StepCacheConfig zero = On(0.0, 0, 100);
    zero.extrapolation = w;
    DenoiseState exact = Run(Spec(zero, 8));
    DenoiseState off8 = Run(Spec(StepCacheConfig{}, 8));
    EXPECT_TRUE(at::equal(off8.latents, exact.latents)) << w;

    StepCacheConfig c = plain;
    c.extrapolation = w;
    DenoiseState x = Run(Spec(c, steps));
    // The same steps reused (any change passes threshold 10), a different
    // estimate for them, still a close image.
    EXPECT_EQ(x.step_cache.steps_reused, 6) << w;
    EXPECT_TRUE(x.step_cache.prev_remaining_residual.defined());
    EXPECT_FALSE(at::equal(x.latents, last.latents)) << w;
    const at::Tensor b = pipeline_->Decode(x);
    EXPECT_TRUE(at::isfinite(b).all().item<bool>());
    const double mse = (reference - b).pow(2).mean().item<double>();
    EXPECT_GT(10 * std::log10(1.0 / std::max(mse, 1e-20)), 15.0) << w;
  }
  // A late guard computes the last 4 steps: 2,3 5,6 reused, 8+ computed.
  StepCacheConfig guarded = plain;
  guarded.final_computed_steps = 4;
  DenoiseState g = Run(Spec(guarded, steps));
  EXPECT_EQ(g.step_cache.steps_reused, 4);
}

TEST_F(StepCachePipelineTest, PredictorMustRecordTheDecision) {
  absl::StatusOr<DenoiseState> s = pipeline_->Prepare(Spec(On(0.1, 1, 1), 4));
  ASSERT_TRUE(s.ok()) << s.status();
  // A predictor that ignores the cache it is handed fails the step rather
  // than silently reporting no decision.
  StepCacheStep* seen = nullptr;
  GuidedPredictor ignores =
      [&](const at::Tensor& x, const at::Tensor&, const at::Tensor&,
          const at::Tensor&, const std::vector<float>&,
          StepCacheStep* cache) -> absl::StatusOr<at::Tensor> {
    seen = cache;
    return x;
  };
  absl::Status st = pipeline_->Step(*s, ignores);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("step-cache decision"));
  ASSERT_NE(seen, nullptr);
  EXPECT_EQ(seen->step, 0);
  EXPECT_EQ(seen->num_steps, 4);

  // One that records it steps; with the cache off it is handed null.
  GuidedPredictor records =
      [&](const at::Tensor& x, const at::Tensor&, const at::Tensor&,
          const at::Tensor&, const std::vector<float>&,
          StepCacheStep* cache) -> absl::StatusOr<at::Tensor> {
    seen = cache;
    if (cache != nullptr) RecordStep(false, *cache->state);
    return x;
  };
  ASSERT_TRUE(pipeline_->Step(*s, records).ok());
  EXPECT_EQ(s->step_cache.steps_computed, 1);
  absl::StatusOr<DenoiseState> off = pipeline_->Prepare(Spec({}, 4));
  ASSERT_TRUE(off.ok()) << off.status();
  ASSERT_TRUE(pipeline_->Step(*off, records).ok());
  EXPECT_EQ(seen, nullptr);
}

}  // namespace
}  // namespace dserve::models
