#include "worker/models/flow_schedule.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace dserve::models {
namespace {

std::vector<int64_t> Ints(const std::vector<double>& t) {
  return std::vector<int64_t>(t.begin(), t.end());
}

// Golden values from wan21_pipeline.md §4 (verified against Wan's
// FlowUniPCMultistepScheduler.set_timesteps).
TEST(WanFlowScheduleTest, FiftyStepsShiftFive) {
  const FlowSchedule s = WanFlowSchedule(50, 5.0);
  ASSERT_EQ(s.timesteps.size(), 50u);
  ASSERT_EQ(s.sigmas.size(), 51u);
  const std::vector<int64_t> t = Ints(s.timesteps);
  EXPECT_EQ(std::vector<int64_t>(t.begin(), t.begin() + 6),
            (std::vector<int64_t>{999, 995, 991, 987, 982, 978}));
  EXPECT_EQ(std::vector<int64_t>(t.end() - 4, t.end()),
            (std::vector<int64_t>{302, 241, 172, 92}));
  // The solver's sigmas are f32 values.
  EXPECT_EQ(s.sigmas[0], static_cast<double>(0.99979985f));
  EXPECT_EQ(s.sigmas[49], static_cast<double>(0.092506856f));
  EXPECT_EQ(s.sigmas[50], 0.0);
}

TEST(WanFlowScheduleTest, FiftyStepsShiftThree) {
  const std::vector<int64_t> t = Ints(WanFlowSchedule(50, 3.0).timesteps);
  EXPECT_EQ(std::vector<int64_t>(t.begin(), t.begin() + 6),
            (std::vector<int64_t>{999, 992, 985, 978, 971, 963}));
  EXPECT_EQ(std::vector<int64_t>(t.end() - 4, t.end()),
            (std::vector<int64_t>{206, 160, 111, 57}));
}

TEST(WanFlowScheduleTest, FourStepsShiftFive) {
  const FlowSchedule s = WanFlowSchedule(4, 5.0);
  EXPECT_EQ(Ints(s.timesteps), (std::vector<int64_t>{999, 937, 833, 624}));
  EXPECT_EQ(s.sigmas[3], static_cast<double>(0.6246874f));
}

TEST(WanFlowScheduleTest, SigmaMaxIsTheFloat) {
  EXPECT_EQ(kWanSigmaMax, 0.9990000128746033);
  // Shift 1 leaves linspace(σmax, 0, N+1) (as f32).
  const FlowSchedule s = WanFlowSchedule(2, 1.0);
  EXPECT_EQ(s.sigmas[0], static_cast<double>(0.999f));
  EXPECT_EQ(s.sigmas[1], static_cast<double>(static_cast<float>(
                             kWanSigmaMax / 2)));
}

TEST(DserveFlowScheduleTest, StartsAtOneWithFloatTimesteps) {
  const FlowSchedule s = DserveFlowSchedule(4, 3.0);
  ASSERT_EQ(s.sigmas.size(), 5u);
  EXPECT_EQ(s.sigmas[0], 1.0);
  EXPECT_EQ(s.sigmas[4], 0.0);
  EXPECT_DOUBLE_EQ(s.timesteps[1], 1000.0 * 3 * 0.75 / (1 + 2 * 0.75));
}

TEST(ScheduleKindTest, NamesRoundTrip) {
  for (ScheduleKind k : {ScheduleKind::kDserve, ScheduleKind::kWan}) {
    EXPECT_EQ(*ParseScheduleKind(ScheduleKindName(k)), k);
  }
  for (SamplerKind k : {SamplerKind::kFlowEuler, SamplerKind::kFlowUniPC}) {
    EXPECT_EQ(*ParseSamplerKind(SamplerKindName(k)), k);
  }
  EXPECT_FALSE(ParseScheduleKind("karras").ok());
  EXPECT_FALSE(ParseSamplerKind("ddim").ok());
}

}  // namespace
}  // namespace dserve::models
