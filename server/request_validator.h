#ifndef DSERVE_SERVER_REQUEST_VALIDATOR_H_
#define DSERVE_SERVER_REQUEST_VALIDATOR_H_

// RequestValidator: turns a client's GenerateRequest into the effective
// request a replica runs: defaults resolved from the model's ModelInfo (the
// worker reports it; it is the source of truth for model limits), the seed
// chosen when unset, and every field checked.
//
// Errors say what the caller should fix: INVALID_ARGUMENT naming the field,
// the value and the allowed range ("width: 100 is not a multiple of 16
// (allowed: 16..256, multiples of 16)"); NOT_FOUND for an unknown model,
// listing the known ones.
//
// Holds only its limits and the seed source. Thread-safe if the seed source
// is; never blocks.

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::server {

struct ValidationLimits {
  // --max_prompt_chars: prompt and negative_prompt length, in characters
  // (Unicode code points).
  int max_prompt_chars = 2048;
  // --max_steps: most denoising steps a request may ask for.
  int max_steps = 200;
  // --max_frames: most frames per request; 0 = only the model's limit.
  int max_frames = 0;
  // --max_pixels: most output pixels (width * height * num_frames) per
  // request; 0 = only the model's size limits.
  int64_t max_pixels = 0;
  // Fixed by the API.
  static constexpr int kMaxClientRequestIdChars = 128;
  static constexpr int kMinPriority = -100;
  static constexpr int kMaxPriority = 100;
  static constexpr float kMaxGuidance = 50.0f;
  static constexpr float kMinFlowShift = 0.1f;
  static constexpr float kMaxFlowShift = 20.0f;
};

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

}  // namespace dserve::server

#endif  // DSERVE_SERVER_REQUEST_VALIDATOR_H_
