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
