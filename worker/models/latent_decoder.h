#ifndef DSERVE_WORKER_MODELS_LATENT_DECODER_H_
#define DSERVE_WORKER_MODELS_LATENT_DECODER_H_

// How a pipeline turns latents into pixels, behind one small interface:
//   pixel    the built-in model: latents are RGB in [-1, 1];
//   wan_vae  Wan2.1's VAE (vae/wan_vae.h): [16, T, h, w] normalised latents
//            -> 1 + 4(T-1) frames of 8h x 8w (the factors the VAE's weights
//            imply), decoded one latent frame at a time, one item at a time
//            (bounded memory).
// Both return float32 (clamp(x, -1, 1) + 1)/2 in [0, 1] on the CPU (what the
// PNG/MP4/RAW encoders read), before any 8-bit rounding.
//
// Ownership / threading: a decoder owns its weights and is immutable after
// construction; methods are const, thread-safe and block until computed.
// Errors (bad shapes) throw c10::Error, as Pipeline::Decode documents.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace dserve::models {

// Told about decode progress, on the decoding thread: (item, 0, chunks) as
// item `item`'s decoding starts, then (item, k, chunks) after its k-th
// chunk. A decoder of the whole batch at once reports every item's start,
// then every item's end. May be empty (nobody listens).
using DecodeProgress =
    std::function<void(int item, int chunks_done, int chunks_total)>;

class LatentDecoder {
 public:
  virtual ~LatentDecoder() = default;
  // [C, T, h, w] of one item's latents for a `frames` x `height` x `width`
  // video (sizes already validated).
  virtual std::vector<int64_t> LatentShape(int channels, int frames,
                                           int height, int width) const = 0;
  // [B, C, T, h, w] -> [B, F, H, W, 3]; `progress` (may be empty) hears
  // each item's chunks: the Wan VAE's latent frames, the pixel decoder's
  // whole batch as one chunk.
  virtual at::Tensor Decode(const at::Tensor& latents,
                            const DecodeProgress& progress) const = 0;
  // The first video frame of one item's [C, T, h, w] latents: [H, W, 3]
  // (decodes only what frame 0 depends on).
  virtual at::Tensor DecodeFirstFrame(const at::Tensor& latents) const = 0;
};

std::unique_ptr<LatentDecoder> MakePixelDecoder();

// Wan VAE weights under Wan2.1_VAE.pth names (no prefix); the VAE runs in
// float32 on `device` (as Wan decodes). INVALID_ARGUMENT names a bad key,
// or a VAE whose z_dim is not `latent_channels` (the DiT's out_channels).
absl::StatusOr<std::unique_ptr<LatentDecoder>> MakeWanVaeDecoder(
    const WeightMap& vae_weights, at::Device device, int latent_channels);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_LATENT_DECODER_H_
