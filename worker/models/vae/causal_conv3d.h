#ifndef DSERVE_WORKER_MODELS_VAE_CAUSAL_CONV3D_H_
#define DSERVE_WORKER_MODELS_VAE_CAUSAL_CONV3D_H_

// Wan's CausalConv3d and the streaming state that lets a video be processed
// a few frames at a time with the same result as all at once.
//
// CausalConv3d(kernel, padding p): zero-pad W and H by ±p, time by 2·p
// frames BEFORE and none after, then an unpadded convolution, so output
// frame t sees input frames t-2..t (kernel 3). Run over a stream in chunks,
// the 2·p front frames come from the tail of the previous chunk's input
// (kept in a CausalCache) instead of zeros; only what is missing at the
// start of the stream is zero. Each cache entry holds at most
// kCausalCacheFrames frames, so memory does not grow with the video length.
//
// Immutable after Load; Forward is const and thread-safe for distinct
// caches; calls block until computed (CPU) or enqueued (GPU).

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/vae/vae_weights.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

// Frames of history a kernel-3 causal layer needs (Wan's CACHE_T).
inline constexpr int64_t kCausalCacheFrames = 2;

// The state of one stream (one decode or encode) through one module. Sized
// by the module's CacheSlots; owned by the caller of the module.
struct CausalCache {
  // Per causal conv: the last (<= kCausalCacheFrames) frames of its input
  // seen so far, an owned copy; undefined before the first chunk.
  std::vector<at::Tensor> tails;
  // Per temporal resample: whether it has seen its first chunk (Wan's
  // "Rep" marker).
  std::vector<bool> started;

  explicit CausalCache(const CacheSlots& slots)
      : tails(slots.tails), started(slots.resamples, false) {}
};

class CausalConv3d {
 public:
  // Reads `<prefix>.weight` [out, in, k...] and `<prefix>.bias` [out].
  // `padding` is Wan's (time, height, width) padding; a layer with time
  // padding takes a slot in `slots`.
  static absl::StatusOr<CausalConv3d> Load(
      VaeWeightReader& reader, CacheSlots& slots, const std::string& prefix,
      int64_t in, int64_t out, const std::array<int64_t, 3>& kernel,
      const std::array<int64_t, 3>& padding);

  // x: [B, in, T, H, W] → [B, out, T, H', W'] (T frames for kernel 3 with
  // padding 1). cache null: zero history (the whole stream at once);
  // otherwise the tail of earlier chunks, updated with this chunk.
  at::Tensor Forward(const at::Tensor& x, CausalCache* cache) const;

  int64_t out_channels() const { return weight_.size(0); }

 private:
  at::Tensor weight_;  // [out, in, kt, kh, kw]
  at::Tensor bias_;    // [out]
  int64_t time_pad_ = 0;  // 2 * padding[0] frames before, none after
  std::array<int64_t, 2> space_pad_ = {0, 0};
  int slot_ = -1;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_VAE_CAUSAL_CONV3D_H_
