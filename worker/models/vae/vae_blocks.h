#ifndef DSERVE_WORKER_MODELS_VAE_VAE_BLOCKS_H_
#define DSERVE_WORKER_MODELS_VAE_VAE_BLOCKS_H_

// The building blocks of Wan's Encoder3d / Decoder3d (wan21_pipeline.md §2),
// functional over the checkpoint weights:
//   VaeRmsNorm      x / max(‖x‖₂ over C, 1e-12) · √C · gamma (no eps 1e-6)
//   ResidualBlock   shortcut(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))))))
//   AttentionBlock  per frame, one head over H·W tokens: x + proj(attn(norm(x)))
//   Resample        upsample2d/3d (nearest ×2 + Conv2d 3×3, C → C/2; 3d adds
//                   time_conv C → 2C, one frame in, two out) and
//                   downsample2d/3d (pad right/bottom, Conv2d 3×3 stride 2;
//                   3d adds a stride-2 time_conv)
// All work on [B, C, T, H, W] in the weights' dtype. Streaming state lives in
// a CausalCache (causal_conv3d.h): pass null to process a whole video at
// once, or the same cache for consecutive chunks of it.
//
// Immutable after Load; Forward is const and thread-safe for distinct
// caches; calls block until computed (CPU) or enqueued (GPU).

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "worker/models/vae/causal_conv3d.h"
#include "worker/models/vae/vae_weights.h"
#include "worker/models/vae/wan_vae_config.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

// F.normalize over dim 1 (eps 1e-12) · √C · gamma; gamma broadcasts as
// [C, 1, ...] against x's trailing dims.
at::Tensor VaeRmsNorm(const at::Tensor& x, const at::Tensor& gamma);

// SiLU(VaeRmsNorm(x, gamma)), computed in place on one fresh tensor (the
// norm → SiLU → conv step of residual blocks and heads).
at::Tensor VaeRmsNormSilu(const at::Tensor& x, const at::Tensor& gamma);

// time_conv output [B, 2C, T, H, W] → [B, C, 2T, H, W]: channels [0:C] of
// input frame t become frame 2t, channels [C:2C] frame 2t+1.
at::Tensor InterleaveTimeConv(const at::Tensor& y);

class ResidualBlock {
 public:
  // `<prefix>.residual.{0.gamma,2.*,3.gamma,6.*}` and, if in != out,
  // `<prefix>.shortcut.*` (1×1×1).
  static absl::StatusOr<ResidualBlock> Load(VaeWeightReader& reader,
                                            CacheSlots& slots,
                                            const std::string& prefix,
                                            int64_t in, int64_t out);
  at::Tensor Forward(const at::Tensor& x, CausalCache* cache) const;

 private:
  at::Tensor gamma1_, gamma2_;  // [C, 1, 1, 1]
  CausalConv3d conv1_, conv2_;
  std::optional<CausalConv3d> shortcut_;
};

class AttentionBlock {
 public:
  // `<prefix>.norm.gamma` [C,1,1], `.to_qkv.*` (1×1 Conv2d C → 3C: q, k, v
  // in that channel order), `.proj.*` (1×1 Conv2d C → C).
  static absl::StatusOr<AttentionBlock> Load(VaeWeightReader& reader,
                                             const std::string& prefix,
                                             int64_t dim);
  // Frames are independent, so no cache.
  at::Tensor Forward(const at::Tensor& x) const;

 private:
  at::Tensor gamma_;               // [C, 1, 1, 1]
  at::Tensor qkv_w_, qkv_b_;       // [3C, C, 1, 1, 1]
  at::Tensor proj_w_, proj_b_;     // [C, C, 1, 1, 1]
};

class Resample {
 public:
  // `<prefix>.resample.1.*` (Conv2d 3×3) and, for the 3d modes,
  // `<prefix>.time_conv.*`. `spec.kind` is never kResidual.
  static absl::StatusOr<Resample> Load(VaeWeightReader& reader,
                                       CacheSlots& slots,
                                       const std::string& prefix,
                                       const VaeLayerSpec& spec);

  // upsample3d: the stream's first frame skips time_conv (1 frame stays 1),
  // every later frame passes through it as one causal sequence with zero
  // history (2 frames out per frame in). downsample3d: the first frame
  // passes, then time_conv (kernel 3, stride 2, unpadded) runs over the
  // whole stream including frame 0, so a chunk must hold an even number of
  // frames (after the first frame). 2d modes act per frame.
  at::Tensor Forward(const at::Tensor& x, CausalCache* cache) const;

  VaeLayerKind kind() const { return kind_; }

 private:
  at::Tensor Spatial(const at::Tensor& x) const;
  at::Tensor Upsample3dTime(const at::Tensor& x, CausalCache* cache) const;
  at::Tensor Downsample3dTime(const at::Tensor& x, CausalCache* cache) const;

  VaeLayerKind kind_ = VaeLayerKind::kUpsample2d;
  at::Tensor conv_w_, conv_b_;  // Conv2d 3×3 as [out, in, 1, 3, 3]
  // upsample3d: a causal conv (3,1,1) C → 2C.
  std::optional<CausalConv3d> up_time_;
  // downsample3d: an unpadded conv (3,1,1) stride (2,1,1) C → C, whose
  // history is the last frame of its input (tails[down_tail_]).
  at::Tensor down_time_w_, down_time_b_;
  int down_tail_ = -1;
  int started_slot_ = -1;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_VAE_VAE_BLOCKS_H_
