#ifndef DSERVE_WORKER_MODELS_PIPELINE_H_
#define DSERVE_WORKER_MODELS_PIPELINE_H_

// A text-to-image/video pipeline: tokenizer + text encoder → Wan2.1-style DiT
// denoising loop (flow matching, classifier-free guidance) → decoder.
//
// The rank loop drives it one step at a time so that cancellation and
// progress happen at step boundaries:
//
//   DenoiseState s = pipeline.Prepare(spec)   // text encode + initial noise
//   for (...) pipeline.Step(s)                // one denoising step
//   at::Tensor pixels = pipeline.Decode(s)    // [B, F, H, W, 3] in [0, 1]
//
// Ownership / threading: a Pipeline owns its weights and is immutable after
// construction; Prepare/Step/Decode are const and may be called from one
// thread at a time per DenoiseState. Every call blocks until its compute is
// done. The initial noise is drawn on the CPU at full shape from each item's
// seed, so the same spec gives the same pixels on any layout.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/models/dit_share.h"
#include "worker/models/flow_schedule.h"
#include "worker/models/model_config.h"
#include "worker/models/prompt_broadcast.h"
#include "worker/models/step_cache.h"
#include "worker/models/unipc_solver.h"
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace dserve::models {

// One request inside a (possibly batched) generation.
struct GenerationItem {
  std::string prompt;
  std::string negative_prompt;
  uint64_t seed = 0;
  // 1 = no classifier-free guidance for this item.
  float guidance_scale = 1.0f;
};

// Shape and schedule shared by every item of a batch. Values are resolved
// (no zeros meaning "default"); ValidateSpec checks them against the model.
struct GenerationSpec {
  int width = 0;
  int height = 0;
  int num_frames = 1;
  int num_steps = 0;
  float flow_shift = 1.0f;
  SamplerKind sampler = SamplerKind::kModelDefault;
  // Step cache for the whole batch (step_cache.h); off by default.
  StepCacheConfig step_cache;
  std::vector<GenerationItem> items;
};

// Where a pipeline runs and in which precision: the DiT's DiTNumerics (its
// matmuls and attention in compute_dtype, norms/modulation/residual in fp32)
// and the device every per-step tensor (latents, contexts) lives on. The
// default, CPU fp32, is the bit-exact path the CPU tests check; a GPU worker
// passes {at::Device(at::kCUDA, n), at::kBFloat16}.
struct PipelineOptions {
  at::Device device = at::kCPU;
  at::ScalarType compute_dtype = at::kFloat;
  // How this rank gets prompt embeddings (prompt_broadcast.h); the default
  // encodes them here.
  PromptSharing prompts;
  // The part of the DiT this rank materialises (dit_share.h: its PP stage's
  // blocks, its TP slices); the default is the whole DiT. A pipeline with
  // less than the whole DiT steps only through a ParallelDiT made for the
  // same share (ParallelDiT::Create(const Pipeline&, ...)).
  DiTShare dit_share;
};

// What Assemble cannot see inside the prompt encoder and the decoder: their
// parameter counts and the bytes this rank keeps of them (0 for a part that
// holds no weights here, e.g. a rank that receives broadcast embeddings).
struct ComponentSizes {
  int64_t text_encoder_parameters = 0;
  int64_t text_encoder_bytes = 0;
  int64_t decoder_parameters = 0;
  int64_t decoder_bytes = 0;
};

// Elements of every defined tensor of `weights`.
int64_t CountParameters(const WeightMap& weights);

// Everything that changes from one denoising step to the next.
struct DenoiseState {
  // [B, C, T, h, w] latents at the current sigma (full shape on every rank;
  // T = F for the pixel decoder, (F-1)/4+1 latent frames for the Wan VAE).
  at::Tensor latents;
  // [B, L, text_dim] text embeddings of the prompts and negative prompts.
  at::Tensor cond_context;
  at::Tensor uncond_context;
  // [B] guidance scale per item.
  at::Tensor guidance;
  // num_steps + 1 shifted sigmas, from ~1 down to 0 (the solver's), and the
  // num_steps timesteps the DiT sees (flow_schedule.h, per model).
  std::vector<double> sigmas;
  std::vector<double> timesteps;
  // The resolved sampler (never kModelDefault) and UniPC's memory.
  SamplerKind sampler = SamplerKind::kFlowEuler;
  UniPCHistory unipc;
  // Steps done so far, 0..num_steps.
  int step = 0;
  // Latest prediction of the clean sample, for previews.
  at::Tensor x0_estimate;
  // Per item: words that were not in the vocabulary.
  std::vector<std::vector<std::string>> unknown_words;
  // Prompts and negative prompts answered by / missing from the text
  // embedding cache (0 and 0 without one, and on receiving ranks).
  int text_cache_hits = 0;
  int text_cache_misses = 0;
  // The spec's step cache and its state (counters: steps computed/reused).
  StepCacheConfig step_cache_config;
  StepCacheState step_cache;
};

class DiT;
class LatentDecoder;
class PromptEncoder;

// The guided model prediction of one step (see models::GuidedPrediction):
// x [B, C, F, h, w] without coordinate planes, timesteps [B], both contexts
// and the per-item guidance scales. A multi-rank replica passes
// ParallelDiT::GuidedPrediction here; null means the local DiT.
// `step_cache`: null when the plan's step cache is off; otherwise the
// predictor makes this step's decision and records it (RecordStep) exactly
// once — Pipeline::Step fails the step if it did not.
using GuidedPredictor = std::function<absl::StatusOr<at::Tensor>(
    const at::Tensor& x, const at::Tensor& timesteps,
    const at::Tensor& cond_context, const at::Tensor& uncond_context,
    const std::vector<float>& guidance, StepCacheStep* step_cache)>;

class Pipeline {
 public:
  // Builds a pipeline from a config and weights keyed by checkpoint name:
  // the DiT's unprefixed, the word encoder's under text_encoder. and, for
  // decoder "wan_vae", the VAE's under vae. (Wan names). text_encoder_type
  // "umt5" needs CreateWanPipeline (wan_pipeline.h). Fails with
  // INVALID_ARGUMENT naming the first missing or mis-shaped key.
  static absl::StatusOr<std::unique_ptr<Pipeline>> Create(
      PipelineConfig config, WeightMap weights, PipelineOptions options = {});
  // The general form: a DiT over `dit_weights` plus the given prompt
  // encoder and latent decoder (prompt_encoder.h, latent_decoder.h), e.g.
  // an encoder that serves cached or broadcast embeddings. `config` must
  // pass ValidateConfig; the parts must match its text_len/text_dim and
  // latent channels.
  // The DiT is materialised per options.dit_share (LoadDiTShard).
  static absl::StatusOr<std::unique_ptr<Pipeline>> Assemble(
      PipelineConfig config, WeightMap dit_weights, PipelineOptions options,
      std::unique_ptr<PromptEncoder> prompts,
      std::unique_ptr<LatentDecoder> decoder, ComponentSizes sizes = {});
  // Loads `dir`/config.json and `dir`/model.safetensors (or, if that file
  // is absent, the shards listed in `dir`/model.safetensors.index.json).
  static absl::StatusOr<std::unique_ptr<Pipeline>> LoadFromDirectory(
      const std::string& dir, PipelineOptions options = {});

  const PipelineConfig& config() const { return config_; }
  const PipelineOptions& options() const { return options_; }
  const WeightMap& weights() const { return weights_; }
  // The denoiser, for code that runs it another way (ParallelDiT): this
  // rank's share of it (dit_shard().dit is dit()).
  const DiT& dit() const;
  const DiTShard& dit_shard() const;
  const ComponentSizes& component_sizes() const { return sizes_; }

  // INVALID_ARGUMENT naming the field, value and allowed range.
  absl::Status ValidateSpec(const GenerationSpec& spec) const;
  absl::StatusOr<DenoiseState> Prepare(const GenerationSpec& spec) const;
  // One denoising step for every item (both CFG branches where guidance != 1).
  absl::Status Step(DenoiseState& state) const;
  // Same, with the model prediction computed by `predictor` (null = local).
  absl::Status Step(DenoiseState& state,
                    const GuidedPredictor& predictor) const;
  // Decodes the final latents: [B, F, H, W, 3] float32 in [0, 1], on the
  // CPU (what the image/video encoders read) whatever options().device is.
  at::Tensor Decode(const DenoiseState& state) const;
  // Same, telling `progress` (may be empty) about each item's decode chunks
  // (latent_decoder.h).
  at::Tensor Decode(const DenoiseState& state,
                    const std::function<void(int item, int chunks_done,
                                             int chunks_total)>& progress)
      const;
  // Decodes the current x0 estimate of item `item`, frame 0: [H, W, 3],
  // float32 in [0, 1] on the CPU.
  at::Tensor Preview(const DenoiseState& state, int item) const;

  ~Pipeline();

 private:
  class Impl;
  Pipeline(PipelineConfig config, WeightMap weights, PipelineOptions options,
           std::unique_ptr<Impl> impl);

  PipelineConfig config_;
  WeightMap weights_;
  PipelineOptions options_;
  ComponentSizes sizes_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_PIPELINE_H_
