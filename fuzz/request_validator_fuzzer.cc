// Fuzzes RequestValidator::Resolve (server/request_validator.cc) and through
// it common::CheckGenerationShape/Item (common/generation_limits.cc).
//
// Input: a serialized dserve.v1.GenerateRequest; the trailing bytes (read
// by FuzzedDataProvider from the end) pick the server-wide caps. The models
// are fixed: the built-in tiny model's limits, a Wan-like one (SentencePiece,
// multiples of 16, 4k+1 frames) and one that reports nothing (all zero).
//
// Invariants beyond "no crash / no sanitizer report":
//  * an admitted request is complete (no 0 / UNSPECIFIED left), passes the
//    model's CheckGenerationShape, and resolving it again gives it back
//    unchanged (what the replica re-checks never disagrees);
//  * every error message is bounded (client strings are echoed truncated).

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/generation_limits.h"
#include "fuzz/fuzz_check.h"
#include "proto/dserve/v1/diffusion_service.pb.h"
#include "server/request_validator.h"

namespace {

using ::dserve::v1::GenerateRequest;
using ::dserve::v1::ModelInfo;

std::vector<ModelInfo> Models() {
  std::vector<ModelInfo> models(3);
  ModelInfo& tiny = models[0];
  tiny.set_name("tiny-dit");
  tiny.set_default_width(64);
  tiny.set_default_height(64);
  tiny.set_default_steps(8);
  tiny.set_default_guidance_scale(4.0f);
  tiny.set_default_flow_shift(3.0f);
  tiny.set_size_step(4);
  tiny.set_max_width(256);
  tiny.set_max_height(256);
  tiny.set_max_frames(17);
  tiny.set_max_steps(200);
  tiny.set_prompt_tokenizer("words");
  tiny.set_max_prompt_tokens(16);
  tiny.add_samplers(dserve::v1::SAMPLER_FLOW_EULER);
  ModelInfo& wan = models[1];
  wan.set_name("wan2.1-t2v-1.3b");
  wan.set_is_default(true);
  wan.set_default_width(832);
  wan.set_default_height(480);
  wan.set_default_frames(81);
  wan.set_default_steps(50);
  wan.set_default_guidance_scale(5.0f);
  wan.set_default_flow_shift(5.0f);
  wan.set_default_fps(16);
  wan.set_size_step(16);
  wan.set_max_width(1280);
  wan.set_max_height(1280);
  wan.set_frame_step(4);
  wan.set_max_frames(81);
  wan.set_max_steps(100);
  wan.set_min_guidance_scale(1.0f);
  wan.set_max_guidance_scale(20.0f);
  wan.set_min_flow_shift(0.5f);
  wan.set_max_flow_shift(12.0f);
  wan.set_prompt_tokenizer("sentencepiece");
  wan.set_max_prompt_tokens(512);
  wan.add_samplers(dserve::v1::SAMPLER_FLOW_UNIPC);
  wan.add_samplers(dserve::v1::SAMPLER_FLOW_EULER);
  models[2].set_name("reports-nothing");
  return models;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<ModelInfo>* const models =
      new std::vector<ModelInfo>(Models());
  FuzzedDataProvider fdp(data, size);
  dserve::server::ValidationLimits limits;
  // Trailing bytes (absent in a plain serialized request: defaults).
  limits.max_prompt_chars = fdp.ConsumeIntegralInRange<int>(0, 4096);
  if (limits.max_prompt_chars == 0) limits.max_prompt_chars = 2048;
  limits.max_steps = fdp.ConsumeIntegralInRange<int>(0, 300);
  limits.max_frames = fdp.ConsumeIntegralInRange<int>(0, 100);
  limits.max_pixels = fdp.ConsumeIntegral<int32_t>();
  if (limits.max_pixels < 0) limits.max_pixels = 0;
  const std::string bytes = fdp.ConsumeRemainingBytesAsString();

  GenerateRequest request;
  if (!request.ParseFromString(bytes)) return 0;
  dserve::server::RequestValidator validator(limits, [] { return 1234u; });
  absl::StatusOr<GenerateRequest> out = validator.Resolve(request, *models);
  if (!out.ok()) {
    FUZZ_CHECK(out.status().message().size() <= 1024,
               "error message of %zu bytes", out.status().message().size());
    return 0;
  }
  const ModelInfo* model = dserve::server::FindModel(*models, out->model());
  FUZZ_CHECK(model != nullptr, "admitted model \"%s\" unknown",
             out->model().c_str());
  FUZZ_CHECK(out->width() > 0 && out->height() > 0 && out->num_frames() > 0 &&
                 out->num_inference_steps() > 0,
             "admitted %dx%dx%d, %d steps", out->width(), out->height(),
             out->num_frames(), out->num_inference_steps());
  FUZZ_CHECK(out->sampler() != dserve::v1::SAMPLER_UNSPECIFIED &&
                 out->output_format() != dserve::v1::OUTPUT_FORMAT_UNSPECIFIED &&
                 out->has_seed() && out->has_guidance_scale() &&
                 out->has_flow_shift(),
             "admitted request has unresolved fields");
  if (limits.max_pixels > 0) {
    FUZZ_CHECK(static_cast<int64_t>(out->width()) * out->height() *
                       out->num_frames() <= limits.max_pixels,
               "admitted beyond --max_pixels");
  }
  const dserve::common::GenerationLimits model_limits =
      dserve::server::LimitsFromModelInfo(*model);
  const absl::Status shape = dserve::common::CheckGenerationShape(
      model_limits,
      {out->width(), out->height(), out->num_frames(),
       out->num_inference_steps(), out->flow_shift(),
       static_cast<int>(out->sampler())});
  FUZZ_CHECK(shape.ok(), "admitted shape refused by the replica check: %s",
             shape.ToString().c_str());
  absl::StatusOr<GenerateRequest> again = validator.Resolve(*out, *models);
  FUZZ_CHECK(again.ok(), "resolved request refused when resolved again: %s",
             again.status().ToString().c_str());
  FUZZ_CHECK(again->SerializeAsString() == out->SerializeAsString(),
             "resolving is not idempotent");
  return 0;
}
