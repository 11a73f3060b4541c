// The frontend and the replica agree on every request limit: for each field,
// at and around each of its bounds, RequestValidator::Resolve (frontend,
// limits read back from the ModelInfo the worker publishes) and
// Pipeline::ValidateSpec (replica, limits from the PipelineConfig) give the
// same verdict and the same message. Both sides call
// common::CheckGenerationShape/Item; this proves the numbers that reach
// them are the same after the trip through ModelInfo.

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/generation_limits.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.pb.h"
#include "server/request_validator.h"
#include "worker/model_info.h"
#include "worker/models/model_config.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"

namespace dserve::tests {
namespace {

using ::dserve::v1::GenerateRequest;

std::string Words(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i == 0 ? "red" : " red");
  return s;
}

// A request with every field explicit, so no default hides a difference.
GenerateRequest Base(const models::PipelineConfig& c) {
  GenerateRequest r;
  r.set_model(c.name);
  r.set_prompt("a red circle");
  r.set_width(c.default_width);
  r.set_height(c.default_height);
  r.set_num_frames(1);
  r.set_num_inference_steps(c.default_steps);
  r.set_guidance_scale(c.default_guidance);
  r.set_flow_shift(c.default_shift);
  r.set_sampler(dserve::v1::SAMPLER_FLOW_EULER);
  r.set_seed(1);
  return r;
}

// What a replica would run for `r` (the plan copies these fields verbatim).
models::GenerationSpec SpecOf(const GenerateRequest& r) {
  models::GenerationSpec spec;
  spec.width = r.width();
  spec.height = r.height();
  spec.num_frames = r.num_frames();
  spec.num_steps = r.num_inference_steps();
  spec.flow_shift = r.flow_shift();
  spec.sampler = static_cast<models::SamplerKind>(r.sampler());
  spec.items.push_back(
      {r.prompt(), r.negative_prompt(), r.seed(), r.guidance_scale()});
  return spec;
}

struct Variation {
  std::string name;
  std::function<void(GenerateRequest&)> apply;
};

std::vector<Variation> BoundaryCases(const models::PipelineConfig& c) {
  std::vector<Variation> v;
  const int step = c.size_step;
  for (int w : {-step, 0 + 1, step - 1, step, step + 1, 2 * step,
                c.max_width - step, c.max_width - 1, c.max_width,
                c.max_width + 1, c.max_width + step}) {
    if (w == 0) continue;  // 0 = default on the frontend, not a size
    v.push_back({"width=" + std::to_string(w),
                 [w](GenerateRequest& r) { r.set_width(w); }});
  }
  for (int h : {-step, 1, step - 1, step, step + 1, c.max_height - 1,
                c.max_height, c.max_height + 1, c.max_height + step}) {
    v.push_back({"height=" + std::to_string(h),
                 [h](GenerateRequest& r) { r.set_height(h); }});
  }
  for (int f : {-1, 1, 2, 3, 4, 5, 6, c.max_frames - 1, c.max_frames,
                c.max_frames + 1}) {
    v.push_back({"num_frames=" + std::to_string(f), [f](GenerateRequest& r) {
                   r.set_width(16);  // keep multi-frame cases cheap
                   r.set_height(16);
                   r.set_num_frames(f);
                 }});
  }
  for (int s : {-1, 1, 2, c.max_steps - 1, c.max_steps, c.max_steps + 1,
                100000}) {
    v.push_back({"steps=" + std::to_string(s),
                 [s](GenerateRequest& r) { r.set_num_inference_steps(s); }});
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (float g : {c.min_guidance - 0.01f, c.min_guidance, 1.0f,
                  c.max_guidance - 0.01f, c.max_guidance,
                  c.max_guidance + 0.01f, nan, inf, -inf}) {
    v.push_back({"guidance=" + std::to_string(g),
                 [g](GenerateRequest& r) { r.set_guidance_scale(g); }});
  }
  for (float s : {0.0f, c.min_shift - 0.01f, c.min_shift, 1.0f,
                  c.max_shift - 0.01f, c.max_shift, c.max_shift + 0.01f, nan,
                  -1.0f}) {
    v.push_back({"flow_shift=" + std::to_string(s),
                 [s](GenerateRequest& r) { r.set_flow_shift(s); }});
  }
  for (int s : {1, 2}) {
    v.push_back({"sampler=" + std::to_string(s), [s](GenerateRequest& r) {
                   r.set_sampler(static_cast<dserve::v1::Sampler>(s));
                 }});
  }
  const int words = c.text_encoder.max_len;
  for (int n : {1, words - 1, words, words + 1, 3 * words}) {
    v.push_back({"prompt words=" + std::to_string(n),
                 [n](GenerateRequest& r) { r.set_prompt(Words(n)); }});
    v.push_back({"negative words=" + std::to_string(n),
                 [n](GenerateRequest& r) { r.set_negative_prompt(Words(n)); }});
  }
  v.push_back({"punctuation and digits are not words", [words](GenerateRequest& r) {
                 r.set_prompt(Words(words) + ", 42 -- !!");
               }});
  v.push_back({"non-ASCII words count", [words](GenerateRequest& r) {
                 r.set_prompt(Words(words - 1) + " caf\xC3\xA9");
               }});
  return v;
}

void ExpectSameVerdicts(const models::PipelineConfig& config) {
  absl::StatusOr<std::unique_ptr<models::Pipeline>> pipeline =
      models::Pipeline::Create(config, models::RandomWeights(config, 7));
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  const std::vector<dserve::v1::ModelInfo> models = {
      worker::ModelInfoFromConfig(config, /*is_default=*/true)};
  server::ValidationLimits no_server_caps;
  no_server_caps.max_prompt_chars = 1 << 20;
  const server::RequestValidator validator(no_server_caps,
                                           [] { return uint64_t{1}; });
  int accepted = 0, refused = 0;
  for (const Variation& v : BoundaryCases(config)) {
    GenerateRequest r = Base(config);
    v.apply(r);
    const absl::Status frontend = validator.Resolve(r, models).status();
    const absl::Status replica = (*pipeline)->ValidateSpec(SpecOf(r));
    EXPECT_EQ(frontend.ok(), replica.ok())
        << v.name << ": frontend " << frontend << " vs replica " << replica;
    if (!frontend.ok() && !replica.ok()) {
      EXPECT_EQ(frontend.code(), absl::StatusCode::kInvalidArgument) << v.name;
      EXPECT_EQ(frontend.message(), replica.message()) << v.name;
    }
    (frontend.ok() ? accepted : refused)++;
  }
  // The table exercises both sides of the bounds.
  EXPECT_GT(accepted, 15);
  EXPECT_GT(refused, 15);
}

TEST(LimitsAgreementTest, DefaultModel) {
  ExpectSameVerdicts(models::DefaultModelConfig());
}

TEST(LimitsAgreementTest, NonDefaultLimits) {
  models::PipelineConfig c = models::DefaultModelConfig();
  c.name = "tight";
  c.max_width = 64;
  c.max_height = 32;
  c.size_step = 8;
  c.default_width = 32;
  c.default_height = 16;
  c.max_frames = 5;
  c.max_steps = 30;
  c.min_guidance = 1.0f;
  c.max_guidance = 7.5f;
  c.min_shift = 0.5f;
  c.max_shift = 6.0f;
  ASSERT_TRUE(models::ValidateConfig(c).ok()) << models::ValidateConfig(c);
  ExpectSameVerdicts(c);
}

// The limits that reach the frontend are the config's, for every field,
// also for a Wan config (4k+1 frames, UniPC first, SentencePiece prompts).
TEST(LimitsAgreementTest, ModelInfoRoundTripKeepsEveryLimit) {
  models::DiTConfig dit;
  for (const models::PipelineConfig& c :
       {models::DefaultModelConfig(), models::WanPipelineConfig(dit)}) {
    const common::GenerationLimits want = models::RequestLimits(c);
    const common::GenerationLimits got =
        server::LimitsFromModelInfo(worker::ModelInfoFromConfig(c, true));
    EXPECT_EQ(got.size_step, want.size_step) << c.name;
    EXPECT_EQ(got.max_width, want.max_width) << c.name;
    EXPECT_EQ(got.max_height, want.max_height) << c.name;
    EXPECT_EQ(got.frame_step, want.frame_step) << c.name;
    EXPECT_EQ(got.max_frames, want.max_frames) << c.name;
    EXPECT_EQ(got.max_steps, want.max_steps) << c.name;
    EXPECT_EQ(got.min_guidance, want.min_guidance) << c.name;
    EXPECT_EQ(got.max_guidance, want.max_guidance) << c.name;
    EXPECT_EQ(got.min_shift, want.min_shift) << c.name;
    EXPECT_EQ(got.max_shift, want.max_shift) << c.name;
    EXPECT_EQ(got.max_prompt_tokens, want.max_prompt_tokens) << c.name;
    EXPECT_EQ(got.words_tokenizer, want.words_tokenizer) << c.name;
    EXPECT_EQ(got.samplers, want.samplers) << c.name;
  }
  const common::GenerationLimits wan =
      models::RequestLimits(models::WanPipelineConfig(dit));
  EXPECT_EQ(wan.frame_step, 4);
  EXPECT_EQ(wan.size_step, 16);
  EXPECT_FALSE(wan.words_tokenizer);
  EXPECT_EQ(wan.samplers, (std::vector<int>{2, 1}));
}

}  // namespace
}  // namespace dserve::tests
