#include "worker/models/vae/vae_blocks.h"

#include <cmath>
#include <utility>

#include "common/status_macros.h"
#include "worker/models/attention.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

// Conv2d weights applied per frame as a Conv3d with a time kernel of 1, so
// [B, C, T, H, W] never needs rearranging to [(B T), C, H, W].
at::Tensor PerFrameKernel(const at::Tensor& w2d) { return w2d.unsqueeze(2); }

// Nearest-neighbour ×2 over H and W. For an integer factor of 2 Wan's
// 'nearest-exact' source index floor((d + 0.5) / 2) equals floor(d / 2), so
// this is a pure repeat (exact in every dtype, any device).
at::Tensor Nearest2x(const at::Tensor& x) {
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3),
                w = x.size(4);
  return x.view({b, c, t, h, 1, w, 1})
      .expand({b, c, t, h, 2, w, 2})
      .reshape({b, c, t, 2 * h, 2 * w});
}

}  // namespace

at::Tensor VaeRmsNorm(const at::Tensor& x, const at::Tensor& gamma) {
  const double scale = std::sqrt(static_cast<double>(x.size(1)));
  at::Tensor denom = x.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
  // In place on the fresh quotient: at the released size each temporary of
  // the last stage is 150 MB per frame.
  return x.div(denom).mul_(scale).mul_(gamma);
}

at::Tensor VaeRmsNormSilu(const at::Tensor& x, const at::Tensor& gamma) {
  at::Tensor y = VaeRmsNorm(x, gamma);
  at::silu_(y);
  return y;
}

at::Tensor InterleaveTimeConv(const at::Tensor& y) {
  const int64_t b = y.size(0), c = y.size(1) / 2, t = y.size(2),
                h = y.size(3), w = y.size(4);
  return y.view({b, 2, c, t, h, w})
      .permute({0, 2, 3, 1, 4, 5})
      .reshape({b, c, 2 * t, h, w});
}

// ---- ResidualBlock ---------------------------------------------------------

absl::StatusOr<ResidualBlock> ResidualBlock::Load(VaeWeightReader& reader,
                                                  CacheSlots& slots,
                                                  const std::string& prefix,
                                                  int64_t in, int64_t out) {
  ResidualBlock b;
  const std::string p = prefix + ".residual.";
  ASSIGN_OR_RETURN(b.gamma1_, reader.Get(p + "0.gamma", {in, 1, 1, 1}));
  ASSIGN_OR_RETURN(b.conv1_, CausalConv3d::Load(reader, slots, p + "2", in,
                                                out, {3, 3, 3}, {1, 1, 1}));
  ASSIGN_OR_RETURN(b.gamma2_, reader.Get(p + "3.gamma", {out, 1, 1, 1}));
  ASSIGN_OR_RETURN(b.conv2_, CausalConv3d::Load(reader, slots, p + "6", out,
                                                out, {3, 3, 3}, {1, 1, 1}));
  if (in != out) {
    ASSIGN_OR_RETURN(b.shortcut_,
                     CausalConv3d::Load(reader, slots, prefix + ".shortcut",
                                        in, out, {1, 1, 1}, {0, 0, 0}));
  }
  return b;
}

at::Tensor ResidualBlock::Forward(const at::Tensor& x,
                                  CausalCache* cache) const {
  at::Tensor h = shortcut_ ? shortcut_->Forward(x, cache) : x;
  at::Tensor y = conv1_.Forward(VaeRmsNormSilu(x, gamma1_), cache);
  y = conv2_.Forward(VaeRmsNormSilu(y, gamma2_), cache);
  return y.add_(h);
}

// ---- AttentionBlock --------------------------------------------------------

absl::StatusOr<AttentionBlock> AttentionBlock::Load(VaeWeightReader& reader,
                                                    const std::string& prefix,
                                                    int64_t dim) {
  AttentionBlock a;
  ASSIGN_OR_RETURN(at::Tensor gamma,
                   reader.Get(prefix + ".norm.gamma", {dim, 1, 1}));
  a.gamma_ = gamma.unsqueeze(1);
  ASSIGN_OR_RETURN(at::Tensor qkv,
                   reader.Get(prefix + ".to_qkv.weight", {3 * dim, dim, 1, 1}));
  a.qkv_w_ = PerFrameKernel(qkv);
  ASSIGN_OR_RETURN(a.qkv_b_, reader.Get(prefix + ".to_qkv.bias", {3 * dim}));
  ASSIGN_OR_RETURN(at::Tensor proj,
                   reader.Get(prefix + ".proj.weight", {dim, dim, 1, 1}));
  a.proj_w_ = PerFrameKernel(proj);
  ASSIGN_OR_RETURN(a.proj_b_, reader.Get(prefix + ".proj.bias", {dim}));
  return a;
}

at::Tensor AttentionBlock::Forward(const at::Tensor& x) const {
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3),
                w = x.size(4);
  at::Tensor qkv = at::conv3d(VaeRmsNorm(x, gamma_), qkv_w_, qkv_b_);
  // [B, 3C, T, H, W] → per frame tokens [(B T), H·W, 1 head, 3C].
  at::Tensor tokens =
      qkv.permute({0, 2, 3, 4, 1}).reshape({b * t, h * w, 1, 3 * c});
  at::Tensor q = tokens.narrow(3, 0, c).contiguous();
  at::Tensor k = tokens.narrow(3, c, c).contiguous();
  at::Tensor v = tokens.narrow(3, 2 * c, c).contiguous();
  at::Tensor o = Attention(q, k, v);  // softmax(q kᵀ / √C) v
  o = o.view({b, t, h, w, c}).permute({0, 4, 1, 2, 3});
  return at::conv3d(o, proj_w_, proj_b_).add_(x);
}

// ---- Resample --------------------------------------------------------------

absl::StatusOr<Resample> Resample::Load(VaeWeightReader& reader,
                                        CacheSlots& slots,
                                        const std::string& prefix,
                                        const VaeLayerSpec& spec) {
  Resample r;
  r.kind_ = spec.kind;
  const int64_t c = spec.in_dim;
  ASSIGN_OR_RETURN(at::Tensor w, reader.Get(prefix + ".resample.1.weight",
                                            {spec.out_dim, c, 3, 3}));
  r.conv_w_ = PerFrameKernel(w);
  ASSIGN_OR_RETURN(r.conv_b_,
                   reader.Get(prefix + ".resample.1.bias", {spec.out_dim}));
  if (spec.kind == VaeLayerKind::kUpsample3d) {
    ASSIGN_OR_RETURN(r.up_time_, CausalConv3d::Load(
                                     reader, slots, prefix + ".time_conv", c,
                                     2 * c, {3, 1, 1}, {1, 0, 0}));
    r.started_slot_ = slots.resamples++;
  } else if (spec.kind == VaeLayerKind::kDownsample3d) {
    ASSIGN_OR_RETURN(r.down_time_w_,
                     reader.Get(prefix + ".time_conv.weight", {c, c, 3, 1, 1}));
    ASSIGN_OR_RETURN(r.down_time_b_,
                     reader.Get(prefix + ".time_conv.bias", {c}));
    r.down_tail_ = slots.tails++;
    r.started_slot_ = slots.resamples++;
  }
  return r;
}

at::Tensor Resample::Spatial(const at::Tensor& x) const {
  switch (kind_) {
    case VaeLayerKind::kUpsample2d:
    case VaeLayerKind::kUpsample3d:
      return at::conv3d(Nearest2x(x), conv_w_, conv_b_, {1, 1, 1}, {0, 1, 1});
    case VaeLayerKind::kDownsample2d:
    case VaeLayerKind::kDownsample3d:
      // ZeroPad2d((0, 1, 0, 1)): one zero column right, one row below.
      return at::conv3d(at::constant_pad_nd(x, {0, 1, 0, 1}), conv_w_,
                        conv_b_, {1, 2, 2});
    case VaeLayerKind::kResidual:
      break;
  }
  return x;
}

at::Tensor Resample::Upsample3dTime(const at::Tensor& x,
                                   CausalCache* cache) const {
  const bool first = cache == nullptr || !cache->started[started_slot_];
  if (cache != nullptr) cache->started[started_slot_] = true;
  if (!first) return InterleaveTimeConv(up_time_->Forward(x, cache));
  // The stream's first frame skips time_conv; the rest of this chunk starts
  // time_conv's own causal sequence (an empty tail is zero history).
  at::Tensor head = x.narrow(2, 0, 1);
  if (x.size(2) == 1) return head;
  at::Tensor rest = up_time_->Forward(x.narrow(2, 1, x.size(2) - 1), cache);
  return at::cat({head, InterleaveTimeConv(rest)}, 2);
}

at::Tensor Resample::Downsample3dTime(const at::Tensor& x,
                                      CausalCache* cache) const {
  const bool first = cache == nullptr || !cache->started[started_slot_];
  at::Tensor in = x;
  if (!first) in = at::cat({cache->tails[down_tail_], x}, 2);
  if (cache != nullptr) {
    cache->started[started_slot_] = true;
    cache->tails[down_tail_] = x.narrow(2, x.size(2) - 1, 1).clone();
  }
  at::Tensor strided;
  if (in.size(2) >= 3) {
    strided = at::conv3d(in, down_time_w_, down_time_b_, {2, 1, 1});
  }
  if (!first) return strided.defined() ? strided : x.narrow(2, 0, 0);
  // Frame 0 passes unchanged, then the strided conv over frames 0, 1, ...
  at::Tensor head = x.narrow(2, 0, 1);
  return strided.defined() ? at::cat({head, strided}, 2) : head;
}

at::Tensor Resample::Forward(const at::Tensor& x, CausalCache* cache) const {
  switch (kind_) {
    case VaeLayerKind::kUpsample3d:
      return Spatial(Upsample3dTime(x, cache));
    case VaeLayerKind::kDownsample3d:
      return Downsample3dTime(Spatial(x), cache);
    default:
      return Spatial(x);
  }
}

}  // namespace dserve::models
