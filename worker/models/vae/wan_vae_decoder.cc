#include "worker/models/vae/wan_vae_decoder.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include <ATen/ATen.h>

namespace dserve::models {

absl::StatusOr<WanVaeDecoder> WanVaeDecoder::Load(VaeWeightReader& reader,
                                                  const WanVaeConfig& config) {
  WanVaeDecoder d;
  CacheSlots& slots = d.slots_;
  const int64_t middle = WanVaeMiddleDim(config);
  // Layers take their cache slots in Wan's call order (conv1, middle,
  // upsamples, head), as Wan's feat_idx does.
  ASSIGN_OR_RETURN(d.conv1_,
                   CausalConv3d::Load(reader, slots, "decoder.conv1",
                                      config.z_dim, middle, {3, 3, 3},
                                      {1, 1, 1}));
  ASSIGN_OR_RETURN(d.middle0_, ResidualBlock::Load(reader, slots,
                                                   "decoder.middle.0", middle,
                                                   middle));
  ASSIGN_OR_RETURN(d.middle1_,
                   AttentionBlock::Load(reader, "decoder.middle.1", middle));
  ASSIGN_OR_RETURN(d.middle2_, ResidualBlock::Load(reader, slots,
                                                   "decoder.middle.2", middle,
                                                   middle));
  const std::vector<VaeLayerSpec> layers = WanVaeDecoderLayers(config);
  int64_t last = middle;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string p = absl::StrCat("decoder.upsamples.", i);
    if (layers[i].kind == VaeLayerKind::kResidual) {
      ASSIGN_OR_RETURN(ResidualBlock rb,
                       ResidualBlock::Load(reader, slots, p, layers[i].in_dim,
                                           layers[i].out_dim));
      d.upsamples_.emplace_back(std::move(rb));
    } else {
      ASSIGN_OR_RETURN(Resample r,
                       Resample::Load(reader, slots, p, layers[i]));
      d.upsamples_.emplace_back(std::move(r));
    }
    last = layers[i].out_dim;
  }
  ASSIGN_OR_RETURN(d.head_gamma_,
                   reader.Get("decoder.head.0.gamma", {last, 1, 1, 1}));
  ASSIGN_OR_RETURN(d.head_conv_,
                   CausalConv3d::Load(reader, slots, "decoder.head.2", last, 3,
                                      {3, 3, 3}, {1, 1, 1}));
  return d;
}

at::Tensor WanVaeDecoder::Forward(const at::Tensor& x,
                                  CausalCache* cache) const {
  at::Tensor h = conv1_.Forward(x, cache);
  h = middle0_.Forward(h, cache);
  h = middle1_.Forward(h);
  h = middle2_.Forward(h, cache);
  return Upsamples(h, 0, cache);
}

at::Tensor WanVaeDecoder::Upsamples(at::Tensor h, size_t first,
                                    CausalCache* cache) const {
  for (size_t i = first; i < upsamples_.size(); ++i) {
    h = std::visit([&](const auto& l) { return l.Forward(h, cache); },
                   upsamples_[i]);
    // Streaming: every later layer is causal with its own cache, so the
    // frames a temporal upsample produced can go through the rest one at a
    // time — the same result with the working set of one frame instead of
    // four at full resolution.
    if (cache != nullptr && h.size(2) > 1 && IsTemporalUpsample(i)) {
      std::vector<at::Tensor> frames;
      for (int64_t f = 0; f < h.size(2); ++f) {
        frames.push_back(Upsamples(h.narrow(2, f, 1), i + 1, cache));
      }
      return at::cat(frames, 2);
    }
  }
  return head_conv_.Forward(VaeRmsNormSilu(h, head_gamma_), cache);
}

bool WanVaeDecoder::IsTemporalUpsample(size_t i) const {
  const Resample* r = std::get_if<Resample>(&upsamples_[i]);
  return r != nullptr && r->kind() == VaeLayerKind::kUpsample3d;
}

}  // namespace dserve::models
