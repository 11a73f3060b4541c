#ifndef DSERVE_SERVER_REQUEST_VALIDATOR_H_
#define DSERVE_SERVER_REQUEST_VALIDATOR_H_

// RequestValidator: turns a client's GenerateRequest into the effective
// request a replica runs: defaults resolved from the model's ModelInfo (the
// worker reports it; it is the source of truth for model limits), the seed
// chosen when unset, and every field checked.
//
// The model-dependent checks are common::CheckGenerationShape/Item on the
// limits the ModelInfo carries: the very function and numbers a replica's
// Pipeline::ValidateSpec applies, so an admitted request never fails there.
//
// Errors say what the caller should fix: INVALID_ARGUMENT naming the field,
// the value and the allowed range ("width: 100 is not a multiple of 16
// (allowed: 16..256, multiples of 16)"); NOT_FOUND for an unknown model,
// listing the known ones. Client-chosen strings are echoed truncated
// (common::EchoValue). A job whose estimated cost is over
// --max_job_seconds is INVALID_ARGUMENT naming the estimate and the budget:
// the same request is refused every time, so the client must make it
// smaller (RESOURCE_EXHAUSTED stays "queue full, retry later").
//
// Holds only its limits and the seed source. Thread-safe if the seed source
// is; never blocks.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/generation_limits.h"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::server {

// Server-wide caps on top of each model's own limits (ModelInfo); they can
// only tighten what a model allows.
struct ValidationLimits {
  // --max_prompt_chars: prompt and negative_prompt length, in characters
  // (Unicode code points).
  int max_prompt_chars = 2048;
  // --max_steps: most denoising steps; 0 = only the model's max_steps.
  int max_steps = 0;
  // --max_frames: most frames per request; 0 = only the model's limit.
  int max_frames = 0;
  // --max_pixels: most output pixels (width * height * num_frames) per
  // request; 0 = only the model's size limits.
  int64_t max_pixels = 0;
  // --max_job_seconds: most estimated replica seconds per job
  // (common/cost_estimate.h, from the ModelInfo.cost the replica measured);
  // < 0 = the model's default_max_job_seconds, 0 = no budget. Models that
  // report no cost are not checked.
  double max_job_seconds = -1;
  // --step_cache=PRESET: the step cache of requests that set none (a
  // request's own step_cache wins, even one with threshold 0 = off).
  // threshold 0 = no default.
  common::StepCacheSettings default_step_cache;
  std::string default_step_cache_preset;
  static constexpr int kMaxStepCachePresetChars = 16;
  // Fixed by the API.
  static constexpr int kMaxClientRequestIdChars = 128;
  static constexpr int kMinPriority = -100;
  static constexpr int kMaxPriority = 100;
  static constexpr int kMinFps = 1;
  static constexpr int kMaxFps = 120;
};

// The model's limits as common::CheckGeneration* takes them. Fields the
// ModelInfo leaves at 0 keep common::GenerationLimits' defaults.
common::GenerationLimits LimitsFromModelInfo(const dserve::v1::ModelInfo& model);

class RequestValidator {
 public:
  // `seed_source` picks the seed of a request that has none (the server
  // reports it in Result.seed so the client can reproduce the image).
  RequestValidator(ValidationLimits limits,
                   std::function<uint64_t()> seed_source);

  // Resolves and validates `request` against `models` (what the replicas
  // serve). Returns the effective request: every optional field set, enums
  // never UNSPECIFIED, sizes/steps never 0.
  absl::StatusOr<dserve::v1::GenerateRequest> Resolve(
      const dserve::v1::GenerateRequest& request,
      const std::vector<dserve::v1::ModelInfo>& models) const;

  const ValidationLimits& limits() const { return limits_; }

 private:
  const ValidationLimits limits_;
  const std::function<uint64_t()> seed_source_;
};

// The model a request for `name` runs: the named one, or the default model
// (is_default, else the first) when `name` is empty; nullptr if unknown.
const dserve::v1::ModelInfo* FindModel(
    const std::vector<dserve::v1::ModelInfo>& models, const std::string& name);

// The estimated replica seconds of `effective` (a resolved request) on
// `model`; nullopt when the model reports no cost.
std::optional<double> EstimateJobSeconds(
    const dserve::v1::GenerateRequest& effective,
    const dserve::v1::ModelInfo& model);

// NOT_FOUND for a request naming `name`, listing (at most 16 of) `models`;
// `name` is echoed truncated.
absl::Status UnknownModelError(const std::string& name,
                               const std::vector<dserve::v1::ModelInfo>& models);

}  // namespace dserve::server

#endif  // DSERVE_SERVER_REQUEST_VALIDATOR_H_
