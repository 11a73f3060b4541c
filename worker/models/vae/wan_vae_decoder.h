#ifndef DSERVE_WORKER_MODELS_VAE_WAN_VAE_DECODER_H_
#define DSERVE_WORKER_MODELS_VAE_WAN_VAE_DECODER_H_

// Wan's Decoder3d (`decoder.*` weights): conv1 (CausalConv3d z → middle),
// middle [ResidualBlock, AttentionBlock, ResidualBlock], the `upsamples`
// Sequential (residual blocks, upsample2d/3d), head [RMS_norm, SiLU,
// CausalConv3d → 3]. Input is de-normalised latents after `conv2`; output
// is unclamped video.
//
// Immutable after Load; Forward is const and thread-safe for distinct
// caches; calls block until computed (CPU) or enqueued (GPU).

#include <cstddef>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/vae/causal_conv3d.h"
#include "worker/models/vae/vae_blocks.h"
#include "worker/models/vae/vae_weights.h"
#include "worker/models/vae/wan_vae_config.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

class WanVaeDecoder {
 public:
  static absl::StatusOr<WanVaeDecoder> Load(VaeWeightReader& reader,
                                            const WanVaeConfig& config);

  // x: [B, z_dim, t, h, w] → [B, 3, f, h·s, w·s]. With cache null, x is the
  // whole latent video (f = 1 + temporal_factor·(t−1)); with a cache (from
  // NewCache, one per video), x is the next chunk of it and f the frames it
  // adds (1 for the first latent frame, temporal_factor per later one).
  // With a cache, the frames each temporal upsample produces continue
  // through the rest of the decoder one at a time (same result, peak
  // memory of one output frame's activations).
  at::Tensor Forward(const at::Tensor& x, CausalCache* cache) const;

  // An empty cache for one video.
  CausalCache NewCache() const { return CausalCache(slots_); }
  const CacheSlots& slots() const { return slots_; }

 private:
  using Layer = std::variant<ResidualBlock, Resample>;

  // upsamples_[first..] and the head.
  at::Tensor Upsamples(at::Tensor h, size_t first, CausalCache* cache) const;
  bool IsTemporalUpsample(size_t i) const;

  CausalConv3d conv1_;
  ResidualBlock middle0_, middle2_;
  AttentionBlock middle1_;
  std::vector<Layer> upsamples_;
  at::Tensor head_gamma_;
  CausalConv3d head_conv_;
  CacheSlots slots_;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_VAE_WAN_VAE_DECODER_H_
