#include "worker/plan_codec.h"

#include <string>

#include "gtest/gtest.h"
#include "parallel/local_communicator.h"
#include "worker/testing/broadcast_pipe.h"
#include "worker/testing/fault_injecting_communicator.h"
#include <ATen/ATen.h>

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionPlan;

ExecutionPlan SamplePlan() {
  ExecutionPlan plan;
  plan.set_model("tiny");
  plan.set_width(32);
  plan.set_height(48);
  plan.set_num_frames(5);
  plan.set_num_inference_steps(4);
  plan.set_flow_shift(3.0f);
  plan.set_output_format(dserve::v1::OUTPUT_FORMAT_RAW_TENSOR);
  for (int i = 0; i < 2; ++i) {
    auto* item = plan.add_items();
    item->set_job_id("job-" + std::to_string(i));
    item->set_prompt("a red circle");
    item->set_negative_prompt(i == 0 ? "" : "blue");
    item->set_seed(1234567890123ULL + i);
    item->set_guidance_scale(4.5f);
    item->set_preview_every_n_steps(i);
  }
  return plan;
}

TEST(PlanCodecTest, RoundTripsEveryField) {
  const ExecutionPlan plan = SamplePlan();
  absl::StatusOr<at::Tensor> bytes = EncodePlan(plan);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(bytes->scalar_type(), at::kByte);
  EXPECT_EQ(bytes->numel(), static_cast<int64_t>(plan.ByteSizeLong()));
  absl::StatusOr<ExecutionPlan> decoded = DecodePlan(*bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->SerializeAsString(), plan.SerializeAsString());
  EXPECT_EQ(decoded->items(1).seed(), 1234567890124ULL);
  EXPECT_EQ(decoded->items(1).negative_prompt(), "blue");
}

TEST(PlanCodecTest, EmptyPlanRoundTrips) {
  absl::StatusOr<at::Tensor> bytes = EncodePlan(ExecutionPlan());
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->numel(), 0);
  absl::StatusOr<ExecutionPlan> decoded = DecodePlan(*bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->items_size(), 0);
}

TEST(PlanCodecTest, RejectsWrongDtypeAndGarbage) {
  EXPECT_EQ(DecodePlan(at::zeros({4}, at::kFloat)).status().code(),
            absl::StatusCode::kInvalidArgument);
  // 0xFF... is not a valid protobuf wire encoding.
  at::Tensor garbage = at::full({8}, 255, at::kByte);
  EXPECT_EQ(DecodePlan(garbage).status().code(), absl::StatusCode::kDataLoss);
}

TEST(PlanCodecTest, SendThenReceiveDeliversEachCommand) {
  testing::BroadcastPipe pipe;
  const ExecutionPlan plan = SamplePlan();
  ASSERT_TRUE(SendCommand(pipe.leader, Command::kIdle, plan).ok());
  ASSERT_TRUE(SendCommand(pipe.leader, Command::kPlan, plan).ok());
  ASSERT_TRUE(SendCommand(pipe.leader, Command::kShutdown, plan).ok());
  // Header only for IDLE and SHUTDOWN; header + bytes for PLAN.
  EXPECT_EQ(pipe.pending(), 4u);

  absl::StatusOr<ReceivedCommand> idle = ReceiveCommand(pipe.follower);
  ASSERT_TRUE(idle.ok()) << idle.status();
  EXPECT_EQ(idle->command, Command::kIdle);
  absl::StatusOr<ReceivedCommand> got = ReceiveCommand(pipe.follower);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->command, Command::kPlan);
  EXPECT_EQ(got->plan.SerializeAsString(), plan.SerializeAsString());
  absl::StatusOr<ReceivedCommand> shutdown = ReceiveCommand(pipe.follower);
  ASSERT_TRUE(shutdown.ok()) << shutdown.status();
  EXPECT_EQ(shutdown->command, Command::kShutdown);
  EXPECT_EQ(pipe.pending(), 0u);
}

TEST(PlanCodecTest, UnknownCommandIsDataLoss) {
  testing::BroadcastPipe pipe;
  at::Tensor header = at::zeros({2}, at::kLong);
  header[0] = 7;
  ASSERT_TRUE(pipe.leader.Broadcast(header, 0).ok());
  EXPECT_EQ(ReceiveCommand(pipe.follower).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(PlanCodecTest, BroadcastFailureIsReported) {
  parallel::LocalCommunicator local;
  testing::FaultInjectingCommunicator comm(local);
  comm.FailFromCall(0);
  EXPECT_EQ(SendCommand(comm, Command::kIdle, ExecutionPlan()).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReceiveCommand(comm).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(PlanCodecTest, SpecFromPlanCopiesShapeAndItems) {
  const models::GenerationSpec spec = SpecFromPlan(SamplePlan());
  EXPECT_EQ(spec.width, 32);
  EXPECT_EQ(spec.height, 48);
  EXPECT_EQ(spec.num_frames, 5);
  EXPECT_EQ(spec.num_steps, 4);
  EXPECT_FLOAT_EQ(spec.flow_shift, 3.0f);
  ASSERT_EQ(spec.items.size(), 2u);
  EXPECT_EQ(spec.items[1].prompt, "a red circle");
  EXPECT_EQ(spec.items[1].negative_prompt, "blue");
  EXPECT_EQ(spec.items[1].seed, 1234567890124ULL);
  EXPECT_FLOAT_EQ(spec.items[0].guidance_scale, 4.5f);
}

TEST(PlanCodecTest, SpecFromPlanCarriesTheSampler) {
  ExecutionPlan plan = SamplePlan();
  plan.set_sampler(dserve::v1::SAMPLER_UNSPECIFIED);
  EXPECT_EQ(SpecFromPlan(plan).sampler, models::SamplerKind::kModelDefault);
  plan.set_sampler(dserve::v1::SAMPLER_FLOW_EULER);
  EXPECT_EQ(SpecFromPlan(plan).sampler, models::SamplerKind::kFlowEuler);
  plan.set_sampler(dserve::v1::SAMPLER_FLOW_UNIPC);
  EXPECT_EQ(SpecFromPlan(plan).sampler, models::SamplerKind::kFlowUniPC);
}

TEST(PlanCodecTest, SpecFromPlanCarriesTheStepCache) {
  ExecutionPlan plan = SamplePlan();
  EXPECT_FALSE(SpecFromPlan(plan).step_cache.enabled);
  plan.mutable_step_cache()->set_threshold(0);  // explicit off
  plan.mutable_step_cache()->set_max_reused_in_a_row(3);
  EXPECT_FALSE(SpecFromPlan(plan).step_cache.enabled);
  plan.mutable_step_cache()->set_threshold(0.25f);
  plan.mutable_step_cache()->set_warmup_steps(2);
  const models::StepCacheConfig c = SpecFromPlan(plan).step_cache;
  EXPECT_TRUE(c.enabled);
  EXPECT_FLOAT_EQ(c.threshold, 0.25f);
  EXPECT_EQ(c.warmup_steps, 2);
  EXPECT_EQ(c.max_reused_in_a_row, 3);
}

TEST(PlanCodecTest, PlanJobIdsJoinsIds) {
  EXPECT_EQ(PlanJobIds(SamplePlan()), "job-0,job-1");
  EXPECT_EQ(PlanJobIds(ExecutionPlan()), "-");
}

}  // namespace
}  // namespace dserve::worker
