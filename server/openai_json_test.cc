#include "server/openai_json.h"

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::server {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

TEST(ParseSize, WidthByHeightAndAuto) {
  EXPECT_EQ(*ParseSize("256x128"), std::make_pair(256, 128));
  EXPECT_EQ(*ParseSize("auto"), std::make_pair(0, 0));
  for (const char* bad : {"256", "256x", "x128", "0x128", "256x-1", "axb",
                          "256x128x3", "256X128"}) {
    absl::StatusOr<std::pair<int, int>> s = ParseSize(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.status().message(), HasSubstr(bad));
    EXPECT_EQ(ErrorJson(s.status())["error"]["param"], "size");
  }
}

TEST(ParseImageGenerationRequest, MapsOpenAiFieldsAndExtras) {
  absl::StatusOr<ImageGenerationRequest> r = ParseImageGenerationRequest(R"({
      "model": "m", "prompt": "a red circle", "n": 3, "size": "64x32",
      "response_format": "b64_json", "user": "u", "quality": null,
      "seed": 18446744073709551615, "steps": 4, "guidance": 2.5,
      "negative_prompt": "blue"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->n, 3);
  EXPECT_EQ(r->request.model(), "m");
  EXPECT_EQ(r->request.prompt(), "a red circle");
  EXPECT_EQ(r->request.width(), 64);
  EXPECT_EQ(r->request.height(), 32);
  EXPECT_EQ(r->request.seed(), 18446744073709551615ull);
  EXPECT_EQ(r->request.num_inference_steps(), 4);
  EXPECT_FLOAT_EQ(r->request.guidance_scale(), 2.5f);
  EXPECT_EQ(r->request.negative_prompt(), "blue");
  EXPECT_EQ(r->request.output_format(), dserve::v1::OUTPUT_FORMAT_PNG);
}

TEST(ParseImageGenerationRequest, DefaultsLeaveTheModelToDecide) {
  absl::StatusOr<ImageGenerationRequest> r =
      ParseImageGenerationRequest(R"({"prompt": "x"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->n, 1);
  EXPECT_EQ(r->request.width(), 0);
  EXPECT_FALSE(r->request.has_seed());
  EXPECT_FALSE(r->request.has_guidance_scale());
}

TEST(ParseImageGenerationRequest, RefusesWhatCannotBeMapped) {
  struct Case {
    const char* body;
    const char* param;
    const char* message;
  };
  for (const Case& c : {
           Case{R"({"prompt": "x", "response_format": "url"})",
                "response_format", "use \"b64_json\""},
           Case{R"({"prompt": "x", "n": 0})", "n", "n: 0 is outside 1 to 10"},
           Case{R"({"prompt": "x", "n": 11})", "n", "outside 1 to 10"},
           Case{R"({"prompt": "x", "n": "two"})", "n", "not an integer"},
           Case{R"({"prompt": "x", "size": "big"})", "size", "\"big\""},
           Case{R"({"prompt": "x", "stepz": 3})", "stepz",
                "unknown field \"stepz\""},
           Case{R"({"prompt": 3})", "prompt", "not a string"},
           Case{R"({"n": 1})", "prompt", "prompt: required"},
           Case{R"({"prompt": "x", "seed": -1})", "seed", "not an integer"},
       }) {
    absl::StatusOr<ImageGenerationRequest> r =
        ParseImageGenerationRequest(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << c.body;
    EXPECT_EQ(ErrorJson(r.status())["error"]["param"], c.param) << c.body;
  }
  for (const char* body : {"", "{", "[1]", "\"x\""}) {
    absl::StatusOr<ImageGenerationRequest> r = ParseImageGenerationRequest(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(ErrorJson(r.status())["error"]["param"].is_null());
  }
}

std::vector<dserve::v1::ModelInfo> Models() {
  dserve::v1::ModelInfo wan;
  wan.set_name("wan");
  wan.set_frame_step(4);
  wan.set_default_fps(16);
  dserve::v1::ModelInfo tiny;
  tiny.set_name("tiny");
  tiny.set_is_default(true);
  tiny.set_frame_step(1);
  tiny.set_default_fps(8);
  return {wan, tiny};
}

TEST(ParseVideoRequest, SecondsBecomeFramesOnTheModelsFrameRule) {
  // Form fields arrive as strings.
  absl::StatusOr<dserve::v1::GenerateRequest> r = ParseVideoRequest(
      json{{"model", "wan"}, {"prompt", "p"}, {"seconds", "4"},
           {"size", "832x480"}, {"seed", "7"}},
      Models());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->num_frames(), 61);  // 64 frames -> 4*15+1.
  EXPECT_EQ(r->width(), 832);
  EXPECT_EQ(r->height(), 480);
  EXPECT_EQ(r->seed(), 7u);
  EXPECT_EQ(r->output_format(), dserve::v1::OUTPUT_FORMAT_MP4);

  r = ParseVideoRequest(json{{"prompt", "p"}, {"seconds", 0.5}, {"fps", 6}},
                        Models());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->num_frames(), 3);  // default model "tiny", step 1.
  EXPECT_EQ(r->fps(), 6);

  r = ParseVideoRequest(
      json{{"prompt", "p"}, {"seconds", "4"}, {"num_frames", 5}}, Models());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->num_frames(), 5);  // explicit frames win.
}

TEST(ParseVideoRequest, Refusals) {
  absl::StatusOr<dserve::v1::GenerateRequest> r =
      ParseVideoRequest(json{{"prompt", "p"}, {"seconds", "0"}}, Models());
  EXPECT_EQ(ErrorJson(r.status())["error"]["param"], "seconds");
  r = ParseVideoRequest(
      json{{"model", "nope"}, {"prompt", "p"}, {"seconds", "1"}}, Models());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  // The gRPC path's message: the served names, the name echoed cut.
  EXPECT_EQ(r.status().message(),
            "model: \"nope\" is not served here (served models: wan, tiny)");
  r = ParseVideoRequest(json{{"model", std::string(300, 'n')},
                             {"prompt", "p"},
                             {"seconds", "1"}},
                        Models());
  EXPECT_THAT(r.status().message(),
              HasSubstr(std::string(64, 'n') + "... (300 bytes)"));
  r = ParseVideoRequest(json{{"prompt", "p"}, {"input_reference", "x"}},
                        Models());
  EXPECT_THAT(r.status().message(), HasSubstr("unknown field"));
}

TEST(HttpErrorFor, OneTableForEveryCode) {
  EXPECT_EQ(HttpErrorFor(absl::StatusCode::kInvalidArgument).http_status, 400);
  EXPECT_EQ(HttpErrorFor(absl::StatusCode::kUnauthenticated).http_status, 401);
  EXPECT_EQ(HttpErrorFor(absl::StatusCode::kPermissionDenied).http_status, 403);
  EXPECT_EQ(HttpErrorFor(absl::StatusCode::kNotFound).http_status, 404);
  EXPECT_EQ(HttpErrorFor(absl::StatusCode::kAlreadyExists).http_status, 409);
  EXPECT_EQ(HttpErrorFor(absl::StatusCode::kResourceExhausted).http_status,
            429);
  EXPECT_EQ(HttpErrorFor(absl::StatusCode::kUnavailable).http_status, 503);
  EXPECT_EQ(HttpErrorFor(absl::StatusCode::kDeadlineExceeded).http_status, 504);
  EXPECT_EQ(HttpErrorFor(absl::StatusCode::kInternal).http_status, 500);
  for (int c = 1; c <= 16; ++c) {
    const HttpError e = HttpErrorFor(static_cast<absl::StatusCode>(c));
    EXPECT_GE(e.http_status, 400) << c;
    EXPECT_STRNE(e.type, "") << c;
  }
}

TEST(ErrorJson, OpenAiShape) {
  const json j = ErrorJson(absl::ResourceExhaustedError("queue full (64)"));
  EXPECT_EQ(j["error"]["message"], "queue full (64)");
  EXPECT_EQ(j["error"]["type"], "rate_limit_error");
  EXPECT_EQ(j["error"]["code"], "resource_exhausted");
  EXPECT_TRUE(j["error"]["param"].is_null());
}

TEST(VideoJson, StatesAndFields) {
  dserve::v1::Job job;
  job.set_job_id("abc-1");
  job.set_state(dserve::v1::JOB_STATE_RUNNING);
  job.set_step(3);
  job.set_total_steps(4);
  job.set_create_time_ms(5000);
  job.mutable_request()->set_prompt("p");
  job.mutable_request()->set_num_frames(17);
  job.mutable_request()->set_fps(8);
  job.mutable_request()->set_width(64);
  job.mutable_request()->set_height(32);
  json v = VideoJson(job);
  EXPECT_EQ(v["id"], "abc-1");
  EXPECT_EQ(v["object"], "video");
  EXPECT_EQ(v["status"], "in_progress");
  EXPECT_EQ(v["progress"], 75);
  EXPECT_EQ(v["created_at"], 5);
  EXPECT_EQ(v["size"], "64x32");
  EXPECT_EQ(v["seconds"], "2.125");
  EXPECT_TRUE(v["error"].is_null());

  job.set_state(dserve::v1::JOB_STATE_CANCELLED);
  job.set_status_code(1);
  job.set_status_message("cancelled by DELETE");
  v = VideoJson(job);
  EXPECT_EQ(v["status"], "failed");
  EXPECT_EQ(v["error"]["code"], "cancelled");
  EXPECT_EQ(v["error"]["message"], "cancelled by DELETE");
}

TEST(ImagesResponseJson, Base64OfTheFirstMedia) {
  dserve::v1::Result result;
  result.add_media()->set_data(std::string("\x89PNG\0x", 6));
  result.set_seed(9);
  const json j = ImagesResponseJson({result, result}, 42);
  EXPECT_EQ(j["created"], 42);
  ASSERT_EQ(j["data"].size(), 2u);
  std::string decoded;
  ASSERT_TRUE(absl::Base64Unescape(j["data"][0]["b64_json"].get<std::string>(),
                                   &decoded));
  EXPECT_EQ(decoded, std::string("\x89PNG\0x", 6));
}

}  // namespace
}  // namespace dserve::server
