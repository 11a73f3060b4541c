#ifndef DSERVE_WORKER_MODELS_MODEL_CONFIG_H_
#define DSERVE_WORKER_MODELS_MODEL_CONFIG_H_

// Static description of a model pipeline (what config.json holds): the DiT
// and text-encoder shapes, the vocabulary, the sampler defaults and the size
// limits a request is validated against.
//
// These are plain values: copyable, no hidden state, thread-compatible. The
// JSON functions do no I/O except where a path is taken, and then block on
// the file system.

#include <array>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/generation_limits.h"
#include "worker/models/flow_schedule.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

// Weights keyed by checkpoint name ("blocks.0.self_attn.q.weight"). Sorted, so
// iteration order (and anything derived from it) is deterministic.
using WeightMap = std::map<std::string, at::Tensor>;

// Shapes of the Wan2.1-style diffusion transformer. Defaults are Wan2.1
// T2V-1.3B's.
struct DiTConfig {
  // Channels the patch embedding reads (latent channels plus any appended
  // coordinate planes) and channels the head writes (latent channels).
  int in_channels = 16;
  int out_channels = 16;
  // Patch size along (frames, height, width); Conv3d kernel = stride.
  std::array<int, 3> patch = {1, 2, 2};
  int dim = 1536;
  int ffn_dim = 8960;
  int num_heads = 12;
  int num_layers = 30;
  // Width of the sinusoidal timestep embedding.
  int freq_dim = 256;
  // Width and (padded) length of the text context the DiT cross-attends to.
  int text_dim = 4096;
  int text_len = 512;
  double eps = 1e-6;

  int head_dim() const { return dim / num_heads; }
  // Values of the head output per token: out_channels * prod(patch).
  int patch_volume() const { return patch[0] * patch[1] * patch[2]; }
};

// A small pre-norm transformer encoder over a word vocabulary.
struct TextEncoderConfig {
  int vocab_size = 0;
  int dim = 128;
  int num_heads = 4;
  int num_layers = 2;
  int ffn_dim = 512;
  // Tokens per prompt; the output is always padded to this length.
  int max_len = 32;
  double eps = 1e-6;
};

// Everything needed to run one model end to end.
struct PipelineConfig {
  std::string name;
  std::string description;
  DiTConfig dit;
  TextEncoderConfig text_encoder;
  // Token strings; index = token id. Must contain "<pad>" and "<unk>".
  std::vector<std::string> vocabulary;
  // What the DiT predicts: "flow_velocity" (v = noise - x0) or "x0".
  std::string prediction_type = "flow_velocity";
  // How latents become pixels: "pixel" (the latents are RGB in [-1, 1]) or
  // "wan_vae" (Wan2.1's causal 3-D VAE: 16 latent channels, 4x temporal
  // and 8x spatial compression; F = 4(T-1)+1 frames from T latent frames).
  std::string decoder = "pixel";
  // How prompts become the DiT's context: "word" (TextEncoder over
  // `vocabulary`, weights under text_encoder.) or "umt5" (Wan2.1:
  // CleanPrompt -> Umt5Tokenizer -> Umt5Encoder, shapes from the weights;
  // text_encoder/vocabulary unused).
  std::string text_encoder_type = "word";
  // Sigma schedule (flow_schedule.h) and the sampler a request with
  // SAMPLER_UNSPECIFIED gets.
  ScheduleKind schedule = ScheduleKind::kDserve;
  SamplerKind default_sampler = SamplerKind::kFlowEuler;
  // The negative prompt used when a request's is empty ("" = none).
  std::string default_negative_prompt;
  int default_width = 64;
  int default_height = 64;
  int max_width = 256;
  int max_height = 256;
  // Width and height must be multiples of this: patch h/w times the
  // decoder's spatial upsampling (1 for "pixel").
  int size_step = 4;
  int max_frames = 17;
  // Frames a request without num_frames gets (Wan: 81).
  int default_frames = 1;
  int default_steps = 20;
  float default_guidance = 4.0f;
  float default_shift = 1.0f;
  // Request limits beyond sizes and frames (RequestLimits below gathers
  // them all; ModelInfo publishes them; Pipeline::ValidateSpec and the
  // frontend check them with the same function).
  int max_steps = 200;
  float min_guidance = 0.0f;
  float max_guidance = 50.0f;
  float min_shift = 0.1f;
  float max_shift = 20.0f;
  // Frames per second of MP4 output when a request leaves fps at 0.
  int default_fps = 16;
  // If true, two planes (y then x, pixel centres in [-1, 1]) are appended to
  // the latents as extra DiT input channels, so the model sees absolute
  // position (RoPE alone is relative).
  bool coordinate_planes = false;

  // Channels of the latents the sampler works on.
  int latent_channels() const { return dit.out_channels; }
};

// Every request limit of `config`, as common::CheckGenerationShape/Item
// take them. Derived, not stored: the frame rule from the decoder (4k+1
// for "wan_vae", any count for "pixel"), the prompt length from the text
// encoder (max_len words for "word", refused beyond; dit.text_len tokens
// for "umt5", truncated) and the samplers from the schedule (Euler only on
// kDserve; default_sampler first, then the other, on kWan).
common::GenerationLimits RequestLimits(const PipelineConfig& config);

// The built-in small default: pixel-space RGB, patch (1,4,4), dim 128,
// 4 heads, 4 layers, a 2-layer word-level text encoder.
PipelineConfig DefaultModelConfig();

// Wan2.1's negative prompt (text2video's sample_neg_prompt), used when a
// request leaves negative_prompt empty.
extern const char kWanDefaultNegativePrompt[];

// A Wan2.1 text-to-video pipeline around `dit` (shapes from the
// checkpoint): umT5 prompts, Wan VAE, Wan schedule, UniPC; 50 steps,
// guidance 5, shift 5, 81 frames at 832x480; sizes multiples of 16.
PipelineConfig WanPipelineConfig(const DiTConfig& dit);

// Checks internal consistency (head_dim even and split-able for 3-D RoPE,
// channel counts, vocabulary size, size_step vs. patch, ...). Errors name
// the field, its value and what is allowed.
absl::Status ValidateConfig(const PipelineConfig& config);

// JSON (config.json) round trip. Parsing validates the result.
std::string ConfigToJson(const PipelineConfig& config);
absl::StatusOr<PipelineConfig> ConfigFromJson(const std::string& json);

// File helpers; block on the file system.
absl::Status WriteConfigFile(const PipelineConfig& config,
                             const std::string& path);
absl::StatusOr<PipelineConfig> ReadConfigFile(const std::string& path);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_MODEL_CONFIG_H_
