#include "server/request_validator.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::server {
namespace {

using ::dserve::v1::GenerateRequest;
using ::dserve::v1::ModelInfo;
using ::testing::HasSubstr;

std::vector<ModelInfo> Models() {
  ModelInfo tiny;
  tiny.set_name("tiny-dit");
  tiny.set_is_default(true);
  tiny.set_default_width(64);
  tiny.set_default_height(48);
  tiny.set_max_width(256);
  tiny.set_max_height(128);
  tiny.set_size_step(16);
  tiny.set_max_frames(9);
  tiny.set_default_steps(20);
  tiny.set_default_guidance_scale(4.5f);
  tiny.set_default_flow_shift(3.0f);
  ModelInfo other = tiny;
  other.set_name("other");
  other.set_is_default(false);
  other.set_default_steps(8);
  return {other, tiny};
}

RequestValidator MakeValidator() {
  ValidationLimits limits;
  limits.max_prompt_chars = 40;
  limits.max_steps = 50;
  return RequestValidator(limits, [] { return uint64_t{987654321}; });
}

GenerateRequest Valid() {
  GenerateRequest r;
  r.set_prompt("a cat");
  return r;
}

TEST(RequestValidatorTest, ResolvesDefaults) {
  absl::StatusOr<GenerateRequest> out = MakeValidator().Resolve(Valid(), Models());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->model(), "tiny-dit");  // The is_default one, not the first.
  EXPECT_EQ(out->width(), 64);
  EXPECT_EQ(out->height(), 48);
  EXPECT_EQ(out->num_frames(), 1);
  EXPECT_EQ(out->num_inference_steps(), 20);
  EXPECT_TRUE(out->has_guidance_scale());
  EXPECT_FLOAT_EQ(out->guidance_scale(), 4.5f);
  EXPECT_TRUE(out->has_flow_shift());
  EXPECT_FLOAT_EQ(out->flow_shift(), 3.0f);
  EXPECT_TRUE(out->has_seed());
  EXPECT_EQ(out->seed(), 987654321u);
  EXPECT_EQ(out->sampler(), dserve::v1::SAMPLER_FLOW_EULER);
  EXPECT_EQ(out->output_format(), dserve::v1::OUTPUT_FORMAT_PNG);
  EXPECT_EQ(out->prompt(), "a cat");
}

TEST(RequestValidatorTest, KeepsExplicitValues) {
  GenerateRequest r = Valid();
  r.set_model("other");
  r.set_width(256);
  r.set_height(16);
  r.set_num_frames(9);
  r.set_num_inference_steps(50);
  r.set_guidance_scale(0.0f);
  r.set_seed(0);
  r.set_flow_shift(0.1f);
  r.set_output_format(dserve::v1::OUTPUT_FORMAT_RAW_TENSOR);
  r.set_priority(-100);
  r.set_preview_every_n_steps(50);
  r.set_client_request_id(std::string(128, 'x'));
  absl::StatusOr<GenerateRequest> out = MakeValidator().Resolve(r, Models());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->model(), "other");
  EXPECT_EQ(out->seed(), 0u);  // An explicit 0 is a seed, not "unset".
  EXPECT_FLOAT_EQ(out->guidance_scale(), 0.0f);
  EXPECT_EQ(out->num_frames(), 9);
  EXPECT_EQ(out->output_format(), dserve::v1::OUTPUT_FORMAT_RAW_TENSOR);
}

TEST(RequestValidatorTest, RejectsEachBadField) {
  struct Case {
    std::string name;
    std::function<void(GenerateRequest&)> mutate;
    absl::StatusCode code;
    std::string message;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Case> cases = {
      {"unknown model", [](auto& r) { r.set_model("sdxl"); },
       absl::StatusCode::kNotFound,
       "model: \"sdxl\" is not served here (served models: other, tiny-dit)"},
      {"empty prompt", [](auto& r) { r.set_prompt(""); },
       absl::StatusCode::kInvalidArgument,
       "prompt: must not be empty (allowed: 1..40 characters)"},
      {"long prompt", [](auto& r) { r.set_prompt(std::string(41, 'a')); },
       absl::StatusCode::kInvalidArgument,
       "prompt: 41 characters is too long (allowed: 1..40 characters)"},
      {"long negative", [](auto& r) { r.set_negative_prompt(std::string(41, 'a')); },
       absl::StatusCode::kInvalidArgument, "negative_prompt: 41 characters"},
      {"width not multiple", [](auto& r) { r.set_width(100); },
       absl::StatusCode::kInvalidArgument,
       "width: 100 is not a multiple of 16 (allowed: 16..256, multiples of 16)"},
      {"width too big", [](auto& r) { r.set_width(272); },
       absl::StatusCode::kInvalidArgument,
       "width: 272 is out of range (allowed: 16..256, multiples of 16)"},
      {"width negative", [](auto& r) { r.set_width(-16); },
       absl::StatusCode::kInvalidArgument, "width: -16 is out of range"},
      {"height too big", [](auto& r) { r.set_height(144); },
       absl::StatusCode::kInvalidArgument,
       "height: 144 is out of range (allowed: 16..128, multiples of 16)"},
      {"frames", [](auto& r) { r.set_num_frames(10); },
       absl::StatusCode::kInvalidArgument,
       "num_frames: 10 is out of range (allowed: 1..9)"},
      {"steps too many", [](auto& r) { r.set_num_inference_steps(51); },
       absl::StatusCode::kInvalidArgument,
       "num_inference_steps: 51 is out of range (allowed: 1..50; the "
       "server's --max_steps)"},
      {"sampler not run by the model",
       [](auto& r) { r.set_sampler(dserve::v1::SAMPLER_FLOW_UNIPC); },
       absl::StatusCode::kInvalidArgument,
       "sampler: 2 is not a sampler this model runs (allowed: 0 = model "
       "default, 1 = SAMPLER_FLOW_EULER)"},
      {"prompt words",
       [](auto& r) { r.set_prompt("a b c d e f g h i j k l m n o p q"); },
       absl::StatusCode::kInvalidArgument,
       "prompt: 17 words is too long for the model's text encoder (allowed: "
       "0..16 words)"},
      {"fps", [](auto& r) { r.set_fps(121); },
       absl::StatusCode::kInvalidArgument,
       "fps: 121 is out of range (allowed: 1..120"},
      {"long unknown model name is echoed truncated",
       [](auto& r) { r.set_model(std::string(100000, 'm')); },
       absl::StatusCode::kNotFound,
       std::string(64, 'm') + "... (100000 bytes)\" is not served here"},
      {"steps negative", [](auto& r) { r.set_num_inference_steps(-1); },
       absl::StatusCode::kInvalidArgument, "num_inference_steps: -1"},
      {"guidance high", [](auto& r) { r.set_guidance_scale(50.5f); },
       absl::StatusCode::kInvalidArgument,
       "guidance_scale: 50.5 is out of range (allowed: 0..50; 1 = no guidance)"},
      {"guidance nan", [nan](auto& r) { r.set_guidance_scale(nan); },
       absl::StatusCode::kInvalidArgument, "guidance_scale: nan"},
      {"shift low", [](auto& r) { r.set_flow_shift(0.05f); },
       absl::StatusCode::kInvalidArgument,
       "flow_shift: 0.05 is out of range (allowed: 0.1..20)"},
      {"shift high", [](auto& r) { r.set_flow_shift(21.0f); },
       absl::StatusCode::kInvalidArgument, "flow_shift: 21"},
      {"sampler", [](auto& r) { r.set_sampler(static_cast<dserve::v1::Sampler>(7)); },
       absl::StatusCode::kInvalidArgument, "sampler: 7 is not a known sampler"},
      {"format",
       [](auto& r) { r.set_output_format(static_cast<dserve::v1::OutputFormat>(9)); },
       absl::StatusCode::kInvalidArgument, "output_format: 9 is not a known"},
      {"priority high", [](auto& r) { r.set_priority(101); },
       absl::StatusCode::kInvalidArgument,
       "priority: 101 is out of range (allowed: -100..100)"},
      {"priority low", [](auto& r) { r.set_priority(-101); },
       absl::StatusCode::kInvalidArgument, "priority: -101"},
      {"preview beyond steps", [](auto& r) { r.set_preview_every_n_steps(21); },
       absl::StatusCode::kInvalidArgument,
       "preview_every_n_steps: 21 is out of range (allowed: 0..20"},
      {"preview negative", [](auto& r) { r.set_preview_every_n_steps(-1); },
       absl::StatusCode::kInvalidArgument, "preview_every_n_steps: -1"},
      {"client id", [](auto& r) { r.set_client_request_id(std::string(129, 'x')); },
       absl::StatusCode::kInvalidArgument,
       "client_request_id: 129 characters is too long (allowed: 0..128 "
       "characters)"},
  };
  const RequestValidator validator = MakeValidator();
  for (const Case& c : cases) {
    GenerateRequest r = Valid();
    c.mutate(r);
    absl::StatusOr<GenerateRequest> out = validator.Resolve(r, Models());
    ASSERT_FALSE(out.ok()) << c.name;
    EXPECT_EQ(out.status().code(), c.code) << c.name;
    EXPECT_THAT(std::string(out.status().message()), HasSubstr(c.message))
        << c.name;
  }
}

TEST(RequestValidatorTest, WanLikeModelLimits) {
  ModelInfo wan;
  wan.set_name("wan");
  wan.set_is_default(true);
  wan.set_default_width(832);
  wan.set_default_height(480);
  wan.set_max_width(1280);
  wan.set_max_height(1280);
  wan.set_size_step(16);
  wan.set_max_frames(81);
  wan.set_default_frames(81);
  wan.set_frame_step(4);
  wan.set_default_steps(50);
  wan.set_max_steps(100);
  wan.set_default_guidance_scale(5.0f);
  wan.set_min_guidance_scale(0.0f);
  wan.set_max_guidance_scale(20.0f);
  wan.set_default_flow_shift(5.0f);
  wan.set_min_flow_shift(1.0f);
  wan.set_max_flow_shift(10.0f);
  wan.set_prompt_tokenizer("sentencepiece");
  wan.set_max_prompt_tokens(512);
  wan.add_samplers(dserve::v1::SAMPLER_FLOW_UNIPC);
  wan.add_samplers(dserve::v1::SAMPLER_FLOW_EULER);
  wan.set_default_sampler(dserve::v1::SAMPLER_FLOW_UNIPC);
  wan.set_default_fps(16);
  const RequestValidator validator(ValidationLimits(), [] { return uint64_t{1}; });
  GenerateRequest r = Valid();
  r.set_prompt(std::string(30, 'w') + " many words are fine for sentencepiece "
               "models because they truncate");
  absl::StatusOr<GenerateRequest> out = validator.Resolve(r, {wan});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->num_frames(), 81);
  EXPECT_EQ(out->sampler(), dserve::v1::SAMPLER_FLOW_UNIPC);
  EXPECT_EQ(out->fps(), 16);
  EXPECT_EQ(out->num_inference_steps(), 50);
  r.set_num_frames(6);
  EXPECT_EQ(validator.Resolve(r, {wan}).status().message(),
            "num_frames: 6 is not of the form 4k+1 (allowed: 4k+1 in 1..81: 1, "
            "5, 9, ..., 81)");
  r.set_num_frames(5);
  r.set_num_inference_steps(101);
  EXPECT_EQ(validator.Resolve(r, {wan}).status().message(),
            "num_inference_steps: 101 is out of range (allowed: 1..100)");
  r.set_num_inference_steps(0);
  r.set_flow_shift(0.5f);
  EXPECT_THAT(std::string(validator.Resolve(r, {wan}).status().message()),
              HasSubstr("flow_shift: 0.5 is out of range (allowed: 1..10)"));
  r.clear_flow_shift();
  r.set_guidance_scale(20.5f);
  EXPECT_THAT(std::string(validator.Resolve(r, {wan}).status().message()),
              HasSubstr("guidance_scale: 20.5 is out of range (allowed: 0..20"));
  r.clear_guidance_scale();
  r.set_sampler(dserve::v1::SAMPLER_FLOW_EULER);
  r.set_output_format(dserve::v1::OUTPUT_FORMAT_MP4);
  r.set_fps(24);
  out = validator.Resolve(r, {wan});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->sampler(), dserve::v1::SAMPLER_FLOW_EULER);
  EXPECT_EQ(out->fps(), 24);
}

TEST(RequestValidatorTest, UnknownModelListsAtMostSixteen) {
  std::vector<ModelInfo> many;
  for (int i = 0; i < 20; ++i) {
    ModelInfo m = Models()[1];
    m.set_name("m" + std::to_string(i));
    many.push_back(m);
  }
  GenerateRequest r = Valid();
  r.set_model("nope");
  absl::Status st = MakeValidator().Resolve(r, many).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(st.message()), HasSubstr("m15, and 4 more"));
}

TEST(RequestValidatorTest, CountsCharactersNotBytes) {
  GenerateRequest r = Valid();
  r.set_prompt("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9");  // 6 x é
  EXPECT_TRUE(MakeValidator().Resolve(r, Models()).ok());
}

TEST(RequestValidatorTest, NoModelsYet) {
  absl::StatusOr<GenerateRequest> out = MakeValidator().Resolve(Valid(), {});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(out.status().message(), HasSubstr("none yet"));
}

}  // namespace
}  // namespace dserve::server

namespace dserve::server {
namespace {

TEST(RequestValidatorLimitsTest, ServerFrameAndPixelLimits) {
  ValidationLimits limits;
  limits.max_frames = 4;
  limits.max_pixels = 64 * 48 * 2;
  const RequestValidator validator(limits, [] { return uint64_t{1}; });
  struct Case {
    const char* name;
    int width, height, frames;
    absl::StatusCode want;
    const char* message;
  };
  const Case cases[] = {
      {"default size, 2 frames fits", 0, 0, 2, absl::StatusCode::kOk, ""},
      {"3 frames is over --max_pixels", 0, 0, 3,
       absl::StatusCode::kInvalidArgument, "--max_pixels=6144"},
      {"5 frames is over --max_frames (model allows 9)", 16, 16, 5,
       absl::StatusCode::kInvalidArgument, "--max_frames"},
      {"4 small frames fit", 16, 16, 4, absl::StatusCode::kOk, ""},
      {"one big frame is over --max_pixels", 128, 128, 1,
       absl::StatusCode::kInvalidArgument, "128 * 128 * 1 = 16384"},
  };
  for (const Case& c : cases) {
    dserve::v1::GenerateRequest r;
    r.set_prompt("a cat");
    r.set_width(c.width);
    r.set_height(c.height);
    r.set_num_frames(c.frames);
    absl::StatusOr<dserve::v1::GenerateRequest> out =
        validator.Resolve(r, Models());
    EXPECT_EQ(out.status().code(), c.want) << c.name << ": " << out.status();
    if (!out.ok()) {
      EXPECT_THAT(std::string(out.status().message()), HasSubstr(c.message))
          << c.name;
    }
  }
}

}  // namespace
}  // namespace dserve::server

// --max_job_seconds (issue 16, finding 1).
namespace dserve::server {
namespace {

using ::dserve::v1::GenerateRequest;
using ::dserve::v1::ModelInfo;
using ::testing::HasSubstr;

// A model reporting a cost: 1e-4 s/token + 1e-8 s/token^2 per evaluation,
// 2 evaluations per guided step, a 600 s default budget, 16 pixels per
// token side.
std::vector<ModelInfo> CostedModels() {
  ModelInfo m;
  m.set_name("costed");
  m.set_is_default(true);
  m.set_default_width(64);
  m.set_default_height(48);
  m.set_max_width(256);
  m.set_max_height(128);
  m.set_size_step(16);
  m.set_max_frames(9);
  m.set_default_steps(20);
  m.set_default_guidance_scale(4.5f);
  m.set_default_flow_shift(3.0f);
  dserve::v1::CostModel* c = m.mutable_cost();
  c->set_pixels_per_token(16);
  c->set_frames_per_latent_frame(1);
  c->set_frames_per_token(1);
  c->set_seconds_per_token(1e-4);
  c->set_seconds_per_token_squared(1e-8);
  c->set_guided_evaluations(2);
  c->set_default_max_job_seconds(600);
  return {m};
}

RequestValidator ValidatorWithBudget(double max_job_seconds) {
  ValidationLimits limits;
  limits.max_job_seconds = max_job_seconds;
  return RequestValidator(limits, [] { return uint64_t{1}; });
}

// 256x128x9 = 16*8*9 = 1152 tokens: (0.1152 + 0.01327104) s per
// evaluation, x 2 (guided) x 200 steps = 51.4 s.
GenerateRequest Big() {
  GenerateRequest r;
  r.set_prompt("a cat");
  r.set_width(256);
  r.set_height(128);
  r.set_num_frames(9);
  r.set_num_inference_steps(200);
  return r;
}

TEST(RequestValidatorCostTest, OverBudgetIsRefusedNamingEstimateAndBudget) {
  absl::StatusOr<GenerateRequest> out =
      ValidatorWithBudget(30).Resolve(Big(), CostedModels());
  ASSERT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument)
      << out.status();
  const std::string message(out.status().message());
  EXPECT_THAT(message, HasSubstr("estimated cost 51 s"));
  EXPECT_THAT(message, HasSubstr("--max_job_seconds=30 s"));
  EXPECT_THAT(message, HasSubstr("1152 tokens"));
  EXPECT_LT(message.size(), 400u) << message;

  // Within a larger budget; and guidance 1 halves it (one evaluation).
  EXPECT_TRUE(ValidatorWithBudget(60).Resolve(Big(), CostedModels()).ok());
  GenerateRequest unguided = Big();
  unguided.set_guidance_scale(1.0f);
  absl::StatusOr<GenerateRequest> resolved =
      ValidatorWithBudget(30).Resolve(unguided, CostedModels());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  std::optional<double> seconds =
      EstimateJobSeconds(*resolved, CostedModels()[0]);
  ASSERT_TRUE(seconds.has_value());
  EXPECT_NEAR(*seconds, 200 * (0.1152 + 0.01327104), 1e-6);
}

TEST(RequestValidatorCostTest, BudgetDefaultsToTheModelsAndZeroTurnsItOff) {
  std::vector<ModelInfo> models = CostedModels();
  // Default budget (-1): the model's 600 s admits 51 s ...
  EXPECT_TRUE(ValidatorWithBudget(-1).Resolve(Big(), models).ok());
  // ... and a model suggesting 40 s refuses it.
  models[0].mutable_cost()->set_default_max_job_seconds(40);
  absl::Status refused = ValidatorWithBudget(-1).Resolve(Big(), models).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("--max_job_seconds=40 s"));
  // 0 = no budget.
  EXPECT_TRUE(ValidatorWithBudget(0).Resolve(Big(), models).ok());
  // A model without a cost is not checked.
  models[0].clear_cost();
  EXPECT_TRUE(ValidatorWithBudget(1e-9).Resolve(Big(), models).ok());
  EXPECT_FALSE(EstimateJobSeconds(Big(), models[0]).has_value());
}

}  // namespace
}  // namespace dserve::server

namespace dserve::server {
namespace {

TEST(RequestValidatorStepCacheTest, ServerDefaultRequestWinsAndRanges) {
  ValidationLimits limits;
  limits.default_step_cache = {0.08f, 2, 2};
  limits.default_step_cache_preset = "medium";
  RequestValidator validator(limits, [] { return uint64_t{1}; });
  GenerateRequest r;
  r.set_prompt("a cat");
  absl::StatusOr<GenerateRequest> out = validator.Resolve(r, Models());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FLOAT_EQ(out->step_cache().threshold(), 0.08f);
  EXPECT_EQ(out->step_cache().warmup_steps(), 2);
  EXPECT_EQ(out->step_cache().max_reused_in_a_row(), 2);
  EXPECT_EQ(out->step_cache().preset(), "medium");
  // A request's own setting wins, even "off".
  r.mutable_step_cache()->set_threshold(0);
  out = validator.Resolve(r, Models());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->step_cache().threshold(), 0.0f);
  // Without a server default nothing is added.
  GenerateRequest plain;
  plain.set_prompt("a cat");
  out = MakeValidator().Resolve(plain, Models());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(out->has_step_cache());
  // Ranges: warmup beyond the resolved 20 steps.
  r.mutable_step_cache()->set_threshold(0.1f);
  r.mutable_step_cache()->set_warmup_steps(21);
  out = validator.Resolve(r, Models());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()),
              ::testing::HasSubstr("step_cache.warmup_steps: 21"));
  r.mutable_step_cache()->set_warmup_steps(0);
  r.mutable_step_cache()->set_threshold(11);
  out = validator.Resolve(r, Models());
  EXPECT_THAT(std::string(out.status().message()),
              ::testing::HasSubstr("step_cache.threshold: 11"));
}

}  // namespace
}  // namespace dserve::server
