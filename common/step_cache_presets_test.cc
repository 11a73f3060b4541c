#include "common/step_cache_presets.h"

#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/generation_limits.h"

namespace dserve::common {
namespace {

using ::testing::HasSubstr;

TEST(StepCachePresetsTest, PresetsAreValidAndOrdered) {
  float last = -1;
  for (const char* name : {"off", "slow", "medium", "fast"}) {
    absl::StatusOr<StepCacheSettings> s = StepCachePreset(name, "--cache");
    ASSERT_TRUE(s.ok()) << name << ": " << s.status();
    EXPECT_TRUE(CheckStepCache(*s, 20).ok()) << name;
    EXPECT_GT(s->threshold, last) << name;  // more reuse each preset
    last = s->threshold;
  }
  EXPECT_EQ(StepCachePreset("off", "--cache")->threshold, 0.0f);
}

TEST(StepCachePresetsTest, UnknownNameNamesFlagAndPresets) {
  absl::StatusOr<StepCacheSettings> s = StepCachePreset("turbo", "--cache");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("--cache"));
  EXPECT_THAT(s.status().message(), HasSubstr("turbo"));
  EXPECT_THAT(s.status().message(), HasSubstr("off, slow, medium, fast"));
}

TEST(CheckStepCacheTest, Ranges) {
  EXPECT_TRUE(CheckStepCache({0.1f, 20, 1000}, 20).ok());
  absl::Status s = CheckStepCache({-0.1f, 0, 0}, 20);
  EXPECT_THAT(s.message(), HasSubstr("step_cache.threshold: -0.1"));
  EXPECT_FALSE(CheckStepCache({10.5f, 0, 0}, 20).ok());
  EXPECT_FALSE(CheckStepCache({std::nanf(""), 0, 0}, 20).ok());
  s = CheckStepCache({0.1f, 21, 0}, 20);
  EXPECT_THAT(s.message(), HasSubstr("step_cache.warmup_steps: 21"));
  EXPECT_THAT(s.message(), HasSubstr("0..20"));
  s = CheckStepCache({0.1f, 0, -1}, 20);
  EXPECT_THAT(s.message(), HasSubstr("step_cache.max_reused_in_a_row: -1"));
}

}  // namespace
}  // namespace dserve::common
