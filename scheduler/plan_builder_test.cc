#include "scheduler/plan_builder.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dserve::scheduler {
namespace {

dserve::v1::GenerateRequest Base() {
  dserve::v1::GenerateRequest r;
  r.set_model("tiny");
  r.set_prompt("a cat");
  r.set_negative_prompt("blurry");
  r.set_width(64);
  r.set_height(32);
  r.set_num_frames(1);
  r.set_num_inference_steps(20);
  r.set_flow_shift(3.0f);
  r.set_guidance_scale(4.0f);
  r.set_seed(9);
  r.set_preview_every_n_steps(5);
  r.set_sampler(dserve::v1::SAMPLER_FLOW_EULER);
  r.set_output_format(dserve::v1::OUTPUT_FORMAT_PNG);
  return r;
}

std::shared_ptr<Job> MakeJob(const std::string& id,
                             dserve::v1::GenerateRequest request) {
  JobSpec spec;
  spec.id = id;
  spec.effective_request = std::move(request);
  return std::make_shared<Job>(spec);
}

TEST(PlanBuilderTest, CanBatchTable) {
  struct Case {
    std::string name;
    std::function<void(dserve::v1::GenerateRequest&)> mutate;
    bool want;
  };
  const std::vector<Case> cases = {
      {"same shape, other prompt/seed/guidance",
       [](auto& r) {
         r.set_prompt("a dog");
         r.set_seed(1);
         r.set_guidance_scale(1.0f);
         r.set_priority(7);
       },
       true},
      {"model", [](auto& r) { r.set_model("big"); }, false},
      {"width", [](auto& r) { r.set_width(32); }, false},
      {"height", [](auto& r) { r.set_height(64); }, false},
      {"frames", [](auto& r) { r.set_num_frames(5); }, false},
      {"steps", [](auto& r) { r.set_num_inference_steps(10); }, false},
      {"shift", [](auto& r) { r.set_flow_shift(5.0f); }, false},
      {"format",
       [](auto& r) { r.set_output_format(dserve::v1::OUTPUT_FORMAT_RAW_TENSOR); },
       false},
  };
  for (const Case& c : cases) {
    dserve::v1::GenerateRequest other = Base();
    c.mutate(other);
    EXPECT_EQ(CanBatch(Base(), other), c.want) << c.name;
  }
}

TEST(PlanBuilderTest, BuildsShapeAndOneItemPerJob) {
  dserve::v1::GenerateRequest second = Base();
  second.set_prompt("a dog");
  second.set_seed(10);
  dserve::internal::v1::ExecutionPlan plan =
      BuildPlan({MakeJob("j-1", Base()), MakeJob("j-2", second)});
  EXPECT_EQ(plan.model(), "tiny");
  EXPECT_EQ(plan.width(), 64);
  EXPECT_EQ(plan.height(), 32);
  EXPECT_EQ(plan.num_frames(), 1);
  EXPECT_EQ(plan.num_inference_steps(), 20);
  EXPECT_FLOAT_EQ(plan.flow_shift(), 3.0f);
  EXPECT_EQ(plan.sampler(), dserve::v1::SAMPLER_FLOW_EULER);
  EXPECT_EQ(plan.output_format(), dserve::v1::OUTPUT_FORMAT_PNG);
  ASSERT_EQ(plan.items_size(), 2);
  EXPECT_EQ(plan.items(0).job_id(), "j-1");
  EXPECT_EQ(plan.items(0).prompt(), "a cat");
  EXPECT_EQ(plan.items(0).negative_prompt(), "blurry");
  EXPECT_EQ(plan.items(0).seed(), 9u);
  EXPECT_FLOAT_EQ(plan.items(0).guidance_scale(), 4.0f);
  EXPECT_EQ(plan.items(0).preview_every_n_steps(), 5);
  EXPECT_EQ(plan.items(1).job_id(), "j-2");
  EXPECT_EQ(plan.items(1).prompt(), "a dog");
  EXPECT_EQ(plan.items(1).seed(), 10u);
}

TEST(PlanBuilderTest, PlanCarriesTheLatestDeadlineOrNone) {
  auto with_deadline = [](const std::string& id,
                          std::optional<absl::Time> deadline) {
    JobSpec spec;
    spec.id = id;
    spec.effective_request = Base();
    spec.deadline = deadline;
    return std::make_shared<Job>(spec);
  };
  const absl::Time t = absl::FromUnixMillis(1'800'000'000'000);
  EXPECT_EQ(BuildPlan({with_deadline("a", t)}).deadline_unix_ms(),
            1'800'000'000'000);
  EXPECT_EQ(BuildPlan({with_deadline("a", t),
                       with_deadline("b", t + absl::Seconds(5))})
                .deadline_unix_ms(),
            1'800'000'005'000);
  // A job without a deadline keeps the plan running: none.
  EXPECT_EQ(BuildPlan({with_deadline("a", t), with_deadline("b", std::nullopt)})
                .deadline_unix_ms(),
            0);
  EXPECT_EQ(BuildPlan({with_deadline("a", std::nullopt)}).deadline_unix_ms(),
            0);
}

TEST(PlanBuilderTest, EmptyJobListGivesEmptyPlan) {
  EXPECT_EQ(BuildPlan({}).items_size(), 0);
}

}  // namespace
}  // namespace dserve::scheduler
