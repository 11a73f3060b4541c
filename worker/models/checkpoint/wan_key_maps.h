#ifndef DSERVE_WORKER_MODELS_CHECKPOINT_WAN_KEY_MAPS_H_
#define DSERVE_WORKER_MODELS_CHECKPOINT_WAN_KEY_MAPS_H_

// Weight names of Wan2.1's two published layouts, and the mapping between
// them (wan21_pipeline.md §1–§3; diffusers scripts/convert_wan_to_diffusers.py
// and transformers' UMT5EncoderModel agree):
//   kDiT: Wan `WanModel` (diffusion_pytorch_model*.safetensors) ↔ diffusers
//         WanTransformer3DModel (`transformer/`). Note the norm swap: Wan's
//         affine cross-attention norm `blocks.N.norm3` is diffusers'
//         `blocks.N.norm2`.
//   kT5:  Wan's umT5 (models_t5_umt5-xxl-enc-bf16.pth) ↔ transformers
//         UMT5EncoderModel (`text_encoder/`). `token_embedding.weight` ↔
//         `shared.weight`; diffusers checkpoints may also carry the tied alias
//         `encoder.embed_tokens.weight`, which maps to token_embedding.weight
//         as well (WanWeightsFromDiffusers keeps one copy).
//   kVae: Wan2.1_VAE.pth ↔ diffusers AutoencoderKLWan (`vae/`). Decoder
//         `upsamples.N` ↔ `up_blocks.N/4` (`resnets.N%4`, or `upsamplers.0`
//         for N%4 == 3): Wan2.1's decoder has 3 residual blocks and one
//         resample per stage (num_res_blocks = 2, as every Wan2.1 VAE and the
//         test configs have).
// The Wan names are what every dserve component consumes. Keys are mapped
// exactly: a key not of the component's layout is an error naming it (none
// is silently dropped except the tied T5 alias above).
// Pure functions; thread-safe; no I/O.

#include <string>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"

namespace dserve::models::checkpoint {

enum class WanComponent { kDiT, kT5, kVae };

const char* WanComponentName(WanComponent component);

// One key. INVALID_ARGUMENT naming the key and component if it is not a key
// of that component's layout.
absl::StatusOr<std::string> WanKeyFromDiffusers(WanComponent component,
                                                const std::string& key);
absl::StatusOr<std::string> DiffusersKeyFromWan(WanComponent component,
                                                const std::string& key);

// Renames every key of a diffusers-layout component to Wan names (tensors are
// shared, not copied). Errors name the key; two keys mapping to one Wan name
// are an error, except the tied T5 alias, which is dropped when
// `shared.weight` is present (INVALID_ARGUMENT if their shapes differ).
absl::StatusOr<WeightMap> WanWeightsFromDiffusers(WanComponent component,
                                                  const WeightMap& weights);
// The inverse: Wan names → diffusers names (writes `shared.weight` only).
absl::StatusOr<WeightMap> DiffusersWeightsFromWan(WanComponent component,
                                                  const WeightMap& weights);

}  // namespace dserve::models::checkpoint

#endif  // DSERVE_WORKER_MODELS_CHECKPOINT_WAN_KEY_MAPS_H_
