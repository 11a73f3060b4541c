#include "clients/request_options.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::clients {
namespace {

using ::testing::HasSubstr;

TEST(BuildGenerateRequestTest, CopiesEveryField) {
  RequestOptions options;
  options.model = "tiny";
  options.prompt = "a red square";
  options.negative_prompt = "blue";
  options.width = 64;
  options.height = 32;
  options.num_frames = 3;
  options.num_inference_steps = 7;
  options.guidance_scale = 4.5f;
  options.seed = 18446744073709551615ull;
  options.flow_shift = 3.0f;
  options.priority = -5;
  options.client_request_id = "abc";
  const dserve::v1::GenerateRequest request = BuildGenerateRequest(options);
  EXPECT_EQ(request.model(), "tiny");
  EXPECT_EQ(request.prompt(), "a red square");
  EXPECT_EQ(request.negative_prompt(), "blue");
  EXPECT_EQ(request.width(), 64);
  EXPECT_EQ(request.height(), 32);
  EXPECT_EQ(request.num_frames(), 3);
  EXPECT_EQ(request.num_inference_steps(), 7);
  ASSERT_TRUE(request.has_guidance_scale());
  EXPECT_FLOAT_EQ(request.guidance_scale(), 4.5f);
  ASSERT_TRUE(request.has_seed());
  EXPECT_EQ(request.seed(), 18446744073709551615ull);
  ASSERT_TRUE(request.has_flow_shift());
  EXPECT_FLOAT_EQ(request.flow_shift(), 3.0f);
  EXPECT_EQ(request.priority(), -5);
  EXPECT_EQ(request.client_request_id(), "abc");
}

TEST(BuildGenerateRequestTest, UnsetOptionalsStayUnset) {
  RequestOptions options;
  options.prompt = "x";
  const dserve::v1::GenerateRequest request = BuildGenerateRequest(options);
  EXPECT_FALSE(request.has_guidance_scale());
  EXPECT_FALSE(request.has_seed());
  EXPECT_FALSE(request.has_flow_shift());
  // A seed of 0 is a real seed, distinct from "unset".
  options.seed = 0;
  EXPECT_TRUE(BuildGenerateRequest(options).has_seed());
}

TEST(JobStateTest, ShortAndFullNamesRoundTrip) {
  struct Row {
    const char* name;
    dserve::v1::JobState state;
  };
  const Row rows[] = {
      {"queued", dserve::v1::JOB_STATE_QUEUED},
      {"RUNNING", dserve::v1::JOB_STATE_RUNNING},
      {"JOB_STATE_SUCCEEDED", dserve::v1::JOB_STATE_SUCCEEDED},
      {"failed", dserve::v1::JOB_STATE_FAILED},
      {"Cancelled", dserve::v1::JOB_STATE_CANCELLED},
      {"deadline_exceeded", dserve::v1::JOB_STATE_DEADLINE_EXCEEDED},
  };
  for (const Row& row : rows) {
    auto state = ParseJobState(row.name);
    ASSERT_TRUE(state.ok()) << row.name << ": " << state.status();
    EXPECT_EQ(*state, row.state) << row.name;
    EXPECT_EQ(*ParseJobState(JobStateName(row.state)), row.state);
  }
}

TEST(JobStateTest, UnknownNameListsAllowedOnes) {
  auto state = ParseJobState("done");
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(state.status().message()),
              HasSubstr("\"done\""));
  EXPECT_THAT(std::string(state.status().message()),
              HasSubstr("queued, running, succeeded, failed, cancelled, "
                        "deadline_exceeded"));
  EXPECT_FALSE(ParseJobState("unspecified").ok());
}

TEST(FormatTest, MeshAndTimingsAndReplicaState) {
  dserve::v1::MeshLayout mesh;
  mesh.set_dp(2);
  mesh.set_cfg(1);
  mesh.set_ring(1);
  mesh.set_ulysses(2);
  mesh.set_pp(1);
  mesh.set_tp(1);
  EXPECT_EQ(FormatMesh(mesh), "dp=2 cfg=1 ring=1 ulysses=2 pp=1 tp=1");
  dserve::v1::Timings timings;
  timings.set_queue_ms(1);
  timings.set_text_encode_ms(2);
  timings.set_denoise_ms(300);
  timings.set_step_ms_mean(15);
  timings.set_decode_ms(4);
  timings.set_total_ms(310);
  EXPECT_EQ(FormatTimings(timings),
            "queue 1.0 ms, text 2.0 ms, denoise 300.0 ms (15.0 ms/step), "
            "decode 4.0 ms, total 310.0 ms");
  EXPECT_EQ(ReplicaStateName(dserve::v1::REPLICA_STATE_DRAINING), "draining");
}

TEST(OutputFormatForTest, NamesAndTheMp4FileRule) {
  EXPECT_EQ(*OutputFormatFor("", "a.png"), dserve::v1::OUTPUT_FORMAT_UNSPECIFIED);
  EXPECT_EQ(*OutputFormatFor("", "clip.MP4"), dserve::v1::OUTPUT_FORMAT_MP4);
  EXPECT_EQ(*OutputFormatFor("Mp4", "clip.video"),
            dserve::v1::OUTPUT_FORMAT_MP4);
  EXPECT_EQ(*OutputFormatFor("png", "a.png"), dserve::v1::OUTPUT_FORMAT_PNG);
  EXPECT_EQ(*OutputFormatFor("raw", "t.f32"),
            dserve::v1::OUTPUT_FORMAT_RAW_TENSOR);
  EXPECT_EQ(*OutputFormatFor("mp4", "clip.mp4"), dserve::v1::OUTPUT_FORMAT_MP4);
  EXPECT_EQ(OutputFormatFor("gif", "a.gif").status().code(),
            absl::StatusCode::kInvalidArgument);
  // Never PNG (or raw) bytes under an .mp4 name.
  for (const char* format : {"png", "PNG", "raw"}) {
    absl::Status s = OutputFormatFor(format, "out/x.mp4").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << format;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("out/x.mp4"));
  }
}

}  // namespace
}  // namespace dserve::clients

namespace dserve::clients {
namespace {

TEST(StepCacheForPresetTest, PresetsEmptyAndUnknown) {
  auto none = StepCacheForPreset("");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto fast = StepCacheForPreset("fast");
  ASSERT_TRUE(fast.ok()) << fast.status();
  ASSERT_TRUE(fast->has_value());
  EXPECT_GT((*fast)->threshold(), 0.0f);
  EXPECT_EQ((*fast)->preset(), "fast");
  auto off = StepCacheForPreset("off");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ((*off)->threshold(), 0.0f);  // sent: overrides a server default
  auto bad = StepCacheForPreset("warp");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              ::testing::HasSubstr("--cache"));
  RequestOptions options;
  options.prompt = "x";
  options.step_cache = **fast;
  EXPECT_EQ(BuildGenerateRequest(options).step_cache().preset(), "fast");
  EXPECT_FALSE(BuildGenerateRequest(RequestOptions{}).has_step_cache());
}

TEST(FormatTimingsTest, StepCounters) {
  dserve::v1::Timings t;
  EXPECT_THAT(FormatTimings(t), ::testing::Not(::testing::HasSubstr("reused")));
  t.set_steps_computed(12);
  t.set_steps_reused(8);
  EXPECT_THAT(FormatTimings(t),
              ::testing::HasSubstr("steps computed 12, reused 8"));
}

}  // namespace
}  // namespace dserve::clients
