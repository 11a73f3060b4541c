#ifndef DSERVE_COMMON_GENERATION_LIMITS_H_
#define DSERVE_COMMON_GENERATION_LIMITS_H_

// The one set of request limits a model enforces, and the one function that
// checks a generation against them. Both tiers call it with the same
// numbers: the frontend at admission (server/request_validator.cc, limits
// read back from the ModelInfo the replicas report) and the replica leader
// before a plan runs (Pipeline::ValidateSpec, limits from the model's
// PipelineConfig). A request the frontend admits therefore never fails
// validation on a replica, and the other way round.
//
// Errors are INVALID_ARGUMENT and read "<field>: <value> <problem>
// (allowed: <range>)". Values a client chose freely (model names, job ids,
// prompts) are echoed at most kMaxEchoChars characters long.
//
// Plain values and pure functions: thread-safe, never block, no torch, no
// protobuf.

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"

namespace dserve::common {

struct GenerationLimits {
  // Width and height: multiples of size_step in [size_step, max_width /
  // max_height].
  int size_step = 4;
  int max_width = 256;
  int max_height = 256;
  // num_frames in [1, max_frames] and of the form frame_step * k + 1 (Wan's
  // causal VAE: frame_step 4, so 1, 5, 9, ...; 1 = any count).
  int frame_step = 1;
  int max_frames = 17;
  // num_steps in [1, max_steps].
  int max_steps = 200;
  // Inclusive ranges; guidance 1 = no classifier-free guidance.
  float min_guidance = 0.0f;
  float max_guidance = 50.0f;
  float min_shift = 0.1f;
  float max_shift = 20.0f;
  // Longest prompt / negative prompt in tokens. With words_tokenizer the
  // count is CountPromptWords (exactly what the word tokenizer produces)
  // and longer prompts are refused; otherwise (SentencePiece) the model
  // truncates and nothing is checked here.
  int max_prompt_tokens = 16;
  bool words_tokenizer = true;
  // dserve.v1.Sampler numbers the model runs (1 = flow Euler, 2 = flow
  // UniPC); the first is the model's default.
  std::vector<int> samplers = {1};
};

// The shape of one generation (a whole batch shares it). `sampler` 0 means
// the model's default and is always allowed.
struct GenerationShape {
  int width = 0;
  int height = 0;
  int num_frames = 1;
  int num_steps = 0;
  float flow_shift = 1.0f;
  int sampler = 0;
};

// Checks width, height, num_frames, num_inference_steps, flow_shift and
// sampler, in that order; the first failure is returned.
absl::Status CheckGenerationShape(const GenerationLimits& limits,
                                  const GenerationShape& shape);

// Checks one item's guidance scale and the token count of its prompt and
// negative prompt (the prompt may be empty here; emptiness is a frontend
// rule).
absl::Status CheckGenerationItem(const GenerationLimits& limits,
                                 float guidance_scale,
                                 absl::string_view prompt,
                                 absl::string_view negative_prompt);

// A generation's step cache (dserve.v1.StepCache, README "Step cache").
struct StepCacheSettings {
  float threshold = 0.0f;  // 0 = off
  int warmup_steps = 0;
  int max_reused_in_a_row = 0;
};
inline constexpr float kMaxStepCacheThreshold = 10.0f;
inline constexpr int kMaxStepCacheReusedInARow = 1000;
// Checks step_cache.threshold (0..kMaxStepCacheThreshold, finite),
// step_cache.warmup_steps (0..num_steps) and
// step_cache.max_reused_in_a_row (0..kMaxStepCacheReusedInARow).
absl::Status CheckStepCache(const StepCacheSettings& cache, int num_steps);

// Words as the word tokenizer (worker/models/text_encoder.cc) splits them:
// maximal runs of ASCII letters and bytes >= 0x80.
int CountPromptWords(absl::string_view text);

// A client-chosen value quoted in an error: `value` if it has at most
// kMaxEchoChars characters, else its first kMaxEchoChars characters (never
// splitting a UTF-8 sequence) followed by "... (N bytes)".
inline constexpr int kMaxEchoChars = 64;
std::string EchoValue(absl::string_view value);

// "1, 2" style list of sampler numbers with their names, for messages.
std::string DescribeSamplers(const std::vector<int>& samplers);

}  // namespace dserve::common

#endif  // DSERVE_COMMON_GENERATION_LIMITS_H_
