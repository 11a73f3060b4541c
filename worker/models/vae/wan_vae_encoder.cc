#include "worker/models/vae/wan_vae_encoder.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include <ATen/ATen.h>

namespace dserve::models {

absl::StatusOr<WanVaeEncoder> WanVaeEncoder::Load(VaeWeightReader& reader,
                                                  const WanVaeConfig& config) {
  WanVaeEncoder e;
  CacheSlots& slots = e.slots_;
  const int64_t middle = WanVaeMiddleDim(config);
  ASSIGN_OR_RETURN(e.conv1_,
                   CausalConv3d::Load(reader, slots, "encoder.conv1", 3,
                                      config.base_dim, {3, 3, 3}, {1, 1, 1}));
  const std::vector<VaeLayerSpec> layers = WanVaeEncoderLayers(config);
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string p = absl::StrCat("encoder.downsamples.", i);
    if (layers[i].kind == VaeLayerKind::kResidual) {
      ASSIGN_OR_RETURN(ResidualBlock rb,
                       ResidualBlock::Load(reader, slots, p, layers[i].in_dim,
                                           layers[i].out_dim));
      e.downsamples_.emplace_back(std::move(rb));
    } else {
      ASSIGN_OR_RETURN(Resample r,
                       Resample::Load(reader, slots, p, layers[i]));
      e.downsamples_.emplace_back(std::move(r));
    }
  }
  ASSIGN_OR_RETURN(e.middle0_, ResidualBlock::Load(reader, slots,
                                                   "encoder.middle.0", middle,
                                                   middle));
  ASSIGN_OR_RETURN(e.middle1_,
                   AttentionBlock::Load(reader, "encoder.middle.1", middle));
  ASSIGN_OR_RETURN(e.middle2_, ResidualBlock::Load(reader, slots,
                                                   "encoder.middle.2", middle,
                                                   middle));
  ASSIGN_OR_RETURN(e.head_gamma_,
                   reader.Get("encoder.head.0.gamma", {middle, 1, 1, 1}));
  ASSIGN_OR_RETURN(e.head_conv_,
                   CausalConv3d::Load(reader, slots, "encoder.head.2", middle,
                                      2 * config.z_dim, {3, 3, 3}, {1, 1, 1}));
  return e;
}

at::Tensor WanVaeEncoder::Forward(const at::Tensor& x,
                                  CausalCache* cache) const {
  at::Tensor h = conv1_.Forward(x, cache);
  for (const Layer& layer : downsamples_) {
    h = std::visit([&](const auto& l) { return l.Forward(h, cache); }, layer);
  }
  h = middle0_.Forward(h, cache);
  h = middle1_.Forward(h);
  h = middle2_.Forward(h, cache);
  return head_conv_.Forward(VaeRmsNormSilu(h, head_gamma_), cache);
}

}  // namespace dserve::models
