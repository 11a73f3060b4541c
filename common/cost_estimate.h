#ifndef DSERVE_COMMON_COST_ESTIMATE_H_
#define DSERVE_COMMON_COST_ESTIMATE_H_

// How long a generation keeps a replica busy, estimated from the model's
// token geometry and a per-evaluation cost the replica measured at start-up
// (worker/cost_calibration.h fits it; the frontend admits with it,
// server/request_validator.cc). Denoising only: text encoding and decoding
// are not counted.
//
//   tokens  = ceil(latent_frames / frames_per_token)
//             * ceil(width / pixels_per_token) * ceil(height / pixels_per_token)
//   latent_frames = (num_frames - 1) / frames_per_latent_frame + 1
//   seconds = steps * evaluations * (a * tokens + b * tokens^2)
//
// with evaluations 1 without classifier-free guidance and
// guided_evaluations (2, or 1 on a CFG-parallel mesh) with it. Attention
// makes b matter: a 256x256x17 job of the built-in model has 69,632 tokens.
//
// Plain values and pure functions: thread-safe, never block, no torch, no
// protobuf.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dserve::common {

struct TokenGeometry {
  // Pixels per token side (VAE stride * DiT patch height/width).
  int pixels_per_token = 4;
  // Frames per latent frame of a causal video VAE (Wan: 4; 1 = none).
  int frames_per_latent_frame = 1;
  // Latent frames per token (DiT patch depth).
  int frames_per_token = 1;
};

struct StepCost {
  // One model evaluation of a 1-item batch, in seconds.
  double seconds_per_token = 0;
  double seconds_per_token_squared = 0;
  // Evaluations per step with classifier-free guidance on the replica's
  // mesh.
  int guided_evaluations = 2;
};

struct JobShape {
  int width = 0;
  int height = 0;
  int num_frames = 1;
  int num_steps = 0;
  // guidance_scale != 1: both CFG branches run.
  bool guided = true;
};

// The DiT tokens of one item of `shape`'s size; at least 1.
int64_t TokenCount(const TokenGeometry& geometry, int width, int height,
                   int num_frames);

// Seconds of one model evaluation over `tokens` tokens.
double EvaluationSeconds(const StepCost& cost, int64_t tokens);

// Seconds of replica time `shape` is estimated to take.
double EstimateJobSeconds(const TokenGeometry& geometry, const StepCost& cost,
                          const JobShape& shape);

// a and b of StepCost from two timings of one evaluation, at tokens_small <
// tokens_large (guided_evaluations is left at its default). Noise can make
// an exact fit negative; a coefficient is then 0 and the other takes the
// larger of the two measured per-token (or per-token^2) rates, so the fit
// never underestimates either timing. INVALID_ARGUMENT for token counts not
// increasing or timings not positive and finite.
absl::StatusOr<StepCost> FitStepCost(int64_t tokens_small, double seconds_small,
                                     int64_t tokens_large,
                                     double seconds_large);

// OK when `shape`'s estimate is at most `max_job_seconds` (<= 0 = no
// budget). Otherwise INVALID_ARGUMENT naming the estimate, how it was
// reached and the budget: the same request is refused every time, so a
// client must change it, not retry it (RESOURCE_EXHAUSTED would invite a
// retry, and already means "queue full, try later").
absl::Status CheckJobCost(const TokenGeometry& geometry, const StepCost& cost,
                          const JobShape& shape, double max_job_seconds);

// "12.3 s", "1.2 ms", for messages.
std::string FormatSeconds(double seconds);

}  // namespace dserve::common

#endif  // DSERVE_COMMON_COST_ESTIMATE_H_
