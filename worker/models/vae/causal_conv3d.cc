#include "worker/models/vae/causal_conv3d.h"

#include <algorithm>

#include "common/status_macros.h"
#include <ATen/ATen.h>

namespace dserve::models {

absl::StatusOr<CausalConv3d> CausalConv3d::Load(
    VaeWeightReader& reader, CacheSlots& slots, const std::string& prefix,
    int64_t in, int64_t out, const std::array<int64_t, 3>& kernel,
    const std::array<int64_t, 3>& padding) {
  CausalConv3d conv;
  ASSIGN_OR_RETURN(conv.weight_,
                   reader.Get(prefix + ".weight",
                              {out, in, kernel[0], kernel[1], kernel[2]}));
  ASSIGN_OR_RETURN(conv.bias_, reader.Get(prefix + ".bias", {out}));
  conv.time_pad_ = 2 * padding[0];
  conv.space_pad_ = {padding[1], padding[2]};
  if (conv.time_pad_ > 0) conv.slot_ = slots.tails++;
  return conv;
}

at::Tensor CausalConv3d::Forward(const at::Tensor& x,
                                 CausalCache* cache) const {
  at::Tensor in = x;
  int64_t zeros = time_pad_;
  if (cache != nullptr && time_pad_ > 0) {
    at::Tensor& tail = cache->tails[slot_];
    if (tail.defined()) {
      in = at::cat({tail, x}, 2);
      zeros -= tail.size(2);
    }
    // The stream's last frames, copied so the cache does not pin the chunk.
    const int64_t keep = std::min(time_pad_, in.size(2));
    tail = in.narrow(2, in.size(2) - keep, keep).clone();
  }
  if (zeros > 0) in = at::constant_pad_nd(in, {0, 0, 0, 0, zeros, 0});
  return at::conv3d(in, weight_, bias_, /*stride=*/{1, 1, 1},
                    /*padding=*/{0, space_pad_[0], space_pad_[1]});
}

}  // namespace dserve::models
