#ifndef DSERVE_WORKER_MODELS_VAE_WAN_VAE_ENCODER_H_
#define DSERVE_WORKER_MODELS_VAE_WAN_VAE_ENCODER_H_

// Wan's Encoder3d (`encoder.*` weights): conv1 (CausalConv3d 3 → base), the
// `downsamples` Sequential (residual blocks, downsample2d/3d), middle
// [ResidualBlock, AttentionBlock, ResidualBlock], head [RMS_norm, SiLU,
// CausalConv3d → 2·z_dim]. Output is [mu | log_var] before the top-level
// `conv1`.
//
// Immutable after Load; Forward is const and thread-safe for distinct
// caches; calls block until computed (CPU) or enqueued (GPU).

#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/vae/causal_conv3d.h"
#include "worker/models/vae/vae_blocks.h"
#include "worker/models/vae/vae_weights.h"
#include "worker/models/vae/wan_vae_config.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

class WanVaeEncoder {
 public:
  static absl::StatusOr<WanVaeEncoder> Load(VaeWeightReader& reader,
                                            const WanVaeConfig& config);

  // x: [B, 3, f, H, W] → [B, 2·z_dim, t, H/s, W/s]. With cache null, x is
  // the whole video (f = 1 + temporal_factor·(t−1)); with a cache (from
  // NewCache, one per video), x is its next chunk: first 1 frame, then
  // temporal_factor frames per chunk (Wan's 1, 4, 4, ...).
  at::Tensor Forward(const at::Tensor& x, CausalCache* cache) const;

  CausalCache NewCache() const { return CausalCache(slots_); }

 private:
  using Layer = std::variant<ResidualBlock, Resample>;

  CausalConv3d conv1_;
  std::vector<Layer> downsamples_;
  ResidualBlock middle0_, middle2_;
  AttentionBlock middle1_;
  at::Tensor head_gamma_;
  CausalConv3d head_conv_;
  CacheSlots slots_;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_VAE_WAN_VAE_ENCODER_H_
