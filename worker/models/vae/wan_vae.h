#ifndef DSERVE_WORKER_MODELS_VAE_WAN_VAE_H_
#define DSERVE_WORKER_MODELS_VAE_WAN_VAE_H_

// The Wan VAE 2.1 (Wan2.1_VAE.pth) as the pipeline uses it: normalised
// latents (what the DiT produces) → video in [−1, 1], and video → normalised
// latents (image-to-video). See wan21_pipeline.md §2 and README.md here.
//
//   ASSIGN_OR_RETURN(WanVae vae, WanVae::Create(weights, {device, at::kFloat}));
//   ASSIGN_OR_RETURN(at::Tensor video, vae.Decode(latents));  // chunked
//
// Decode runs one latent frame at a time (Wan's chunked decode) with a
// per-layer cache of the last 2 input frames, so its peak memory is that of
// one latent frame whatever the video length; DecodeOneShot runs all frames
// at once (same numbers, memory grows with the length) and exists to prove
// the two agree. WanVaeDecodeStream exposes the chunks (e.g. for previews).
//
// Ownership / threading: a WanVae holds its weights (converted copies on
// numerics.device) behind a shared pointer: copies are cheap and share
// them. It is immutable after Create; every method is const and may be
// called from several threads at once. A WanVaeDecodeStream holds its own
// cache and is not thread-safe. Calls block until computed (CPU) or
// enqueued (GPU).

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include "worker/models/vae/causal_conv3d.h"
#include "worker/models/vae/vae_weights.h"
#include "worker/models/vae/wan_vae_config.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

class WanVaeDecodeStream;

class WanVae {
 public:
  // `weights`: the VAE's tensors under the original Wan names (conv1.*,
  // conv2.*, decoder.*, optionally encoder.*), no prefix, any float dtype
  // and device. The config is inferred from their shapes; every key the
  // config implies must be present with its shape and no other key may be
  // (INVALID_ARGUMENT names the key). Weights are copied to numerics.device
  // in numerics.dtype.
  static absl::StatusOr<WanVae> Create(const WeightMap& weights,
                                       const VaeNumerics& numerics = {});

  const WanVaeConfig& config() const;
  const VaeNumerics& numerics() const;

  // Results are float32 (float64 when numerics.dtype is float64).
  //
  // latents: [B, z_dim, T, h, w] normalised latents, any float dtype (moved
  // to numerics.device). Returns [B, 3, 1 + temporal_factor·(T−1), h·s,
  // w·s] float32 in [−1, 1] (s = spatial_factor, 8 for Wan) on
  // numerics.device: clamp(decode(latents·std + mean), −1, 1), decoded one
  // latent frame at a time. INVALID_ARGUMENT for a bad shape.
  absl::StatusOr<at::Tensor> Decode(const at::Tensor& latents) const;
  // The same result computed over all frames at once.
  absl::StatusOr<at::Tensor> DecodeOneShot(const at::Tensor& latents) const;
  // A stream decoding one video chunk by chunk.
  WanVaeDecodeStream NewDecodeStream() const;

  // video: [B, 3, 1 + temporal_factor·k, H, W] in [−1, 1], H and W
  // multiples of spatial_factor. Returns [B, z_dim, 1 + k, H/s, W/s]
  // float32: (mu − mean) / std, encoded in Wan's chunks of 1, 4, 4, ...
  // frames. FAILED_PRECONDITION if the weights had no encoder.
  absl::StatusOr<at::Tensor> Encode(const at::Tensor& video) const;
  // The same result computed over all frames at once.
  absl::StatusOr<at::Tensor> EncodeOneShot(const at::Tensor& video) const;

 private:
  friend class WanVaeDecodeStream;
  struct Model;

  explicit WanVae(std::shared_ptr<const Model> model)
      : model_(std::move(model)) {}
  absl::Status CheckLatents(const at::Tensor& latents) const;
  absl::Status CheckVideo(const at::Tensor& video) const;
  // Unchecked decode of `latents` continuing `cache` (null: all at once).
  at::Tensor DecodeChunk(const at::Tensor& latents, CausalCache* cache) const;
  at::Tensor EncodeChunks(const at::Tensor& video, bool chunked) const;

  std::shared_ptr<const Model> model_;
};

// Decodes one video a chunk of latent frames at a time; the concatenated
// outputs equal WanVae::Decode of the concatenated latents. Holds a copy of
// the WanVae (shared weights) and the video's cache: per causal conv at
// most kCausalCacheFrames frames, so its size does not depend on how many
// frames have been pushed. Not thread-safe.
class WanVaeDecodeStream {
 public:
  // latents: the next [B, z_dim, t, h, w] (t >= 1) normalised latents, same
  // B, h, w as before. Returns the video frames they add, float32 in [−1, 1]:
  // 1 + temporal_factor·(t−1) for the first push, temporal_factor·t after.
  absl::StatusOr<at::Tensor> Push(const at::Tensor& latents);

  int64_t latent_frames_pushed() const { return pushed_; }
  // The per-layer state (for tests and memory accounting).
  const CausalCache& cache() const { return cache_; }

 private:
  friend class WanVae;
  WanVaeDecodeStream(WanVae vae, CausalCache cache)
      : vae_(std::move(vae)), cache_(std::move(cache)) {}

  WanVae vae_;
  CausalCache cache_;
  int64_t pushed_ = 0;
  std::vector<int64_t> shape_;  // [B, z_dim, -, h, w] of the first push
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_VAE_WAN_VAE_H_
