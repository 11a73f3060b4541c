#include "worker/models/latent_decoder.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/models/vae/wan_vae.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

// [.., 3, F, H, W]-style channel-first video in [-1, 1] -> [0, 1] on the CPU.
at::Tensor ToUnitRange(const at::Tensor& x) {
  return x.clamp(-1.0, 1.0).add(1.0).mul(0.5).to(at::kCPU, at::kFloat);
}

class PixelDecoder : public LatentDecoder {
 public:
  std::vector<int64_t> LatentShape(int channels, int frames, int height,
                                   int width) const override {
    return {channels, frames, height, width};
  }
  at::Tensor Decode(const at::Tensor& latents,
                    const DecodeProgress& progress) const override {
    const int items = static_cast<int>(latents.size(0));
    if (progress) {
      for (int i = 0; i < items; ++i) progress(i, 0, 1);
    }
    at::Tensor pixels =
        ToUnitRange(latents.permute({0, 2, 3, 4, 1})).contiguous();
    if (progress) {
      for (int i = 0; i < items; ++i) progress(i, 1, 1);
    }
    return pixels;
  }
  at::Tensor DecodeFirstFrame(const at::Tensor& latents) const override {
    return ToUnitRange(latents.select(1, 0).permute({1, 2, 0})).contiguous();
  }
};

at::Tensor ValueOrThrow(absl::StatusOr<at::Tensor> t, const char* what) {
  TORCH_CHECK(t.ok(), what, ": ", std::string(t.status().message()));
  return *std::move(t);
}

class WanVaeDecoder : public LatentDecoder {
 public:
  explicit WanVaeDecoder(WanVae vae) : vae_(std::move(vae)) {}

  std::vector<int64_t> LatentShape(int channels, int frames, int height,
                                   int width) const override {
    const WanVaeConfig& c = vae_.config();
    return {channels, (frames - 1) / c.temporal_factor() + 1,
            height / c.spatial_factor(), width / c.spatial_factor()};
  }
  at::Tensor Decode(const at::Tensor& latents,
                    const DecodeProgress& progress) const override {
    // One item at a time: the VAE's activations dominate decode memory.
    // One latent frame at a time through a stream (what WanVae::Decode
    // does inside), so each chunk can be reported.
    std::vector<at::Tensor> videos;
    const int chunks = static_cast<int>(latents.size(2));
    for (int64_t i = 0; i < latents.size(0); ++i) {
      const int item = static_cast<int>(i);
      if (progress) progress(item, 0, chunks);
      const at::Tensor z = latents.narrow(0, i, 1).to(at::kFloat);
      WanVaeDecodeStream stream = vae_.NewDecodeStream();
      at::Tensor video;  // [1, 3, F, H, W], allocated at the first chunk
      int64_t frame = 0;
      for (int t = 0; t < chunks; ++t) {
        const at::Tensor part =
            ValueOrThrow(stream.Push(z.narrow(2, t, 1)), "WanVae::Decode");
        if (!video.defined()) {
          video = at::empty({1, 3, vae_.config().VideoFrames(chunks),
                             part.size(3), part.size(4)},
                            part.options());
        }
        video.narrow(2, frame, part.size(2)).copy_(part);
        frame += part.size(2);
        if (progress) progress(item, t + 1, chunks);
      }
      TORCH_CHECK(frame == video.size(2), "Wan VAE decoded ", frame,
                  " frames; expected ", video.size(2));
      videos.push_back(ToUnitRange(video.select(0, 0).permute({1, 2, 3, 0})));
    }
    return at::stack(videos).contiguous();
  }
  at::Tensor DecodeFirstFrame(const at::Tensor& latents) const override {
    at::Tensor video = ValueOrThrow(
        vae_.Decode(latents.narrow(1, 0, 1).unsqueeze(0).to(at::kFloat)),
        "WanVae::Decode (preview)");
    // [1, 3, 1, H, W] -> [H, W, 3].
    return ToUnitRange(video.select(0, 0).select(1, 0).permute({1, 2, 0}))
        .contiguous();
  }

 private:
  WanVae vae_;
};

}  // namespace

std::unique_ptr<LatentDecoder> MakePixelDecoder() {
  return std::make_unique<PixelDecoder>();
}

absl::StatusOr<std::unique_ptr<LatentDecoder>> MakeWanVaeDecoder(
    const WeightMap& vae_weights, at::Device device, int latent_channels) {
  absl::StatusOr<WanVae> vae = WanVae::Create(vae_weights, {device, at::kFloat});
  if (!vae.ok()) {
    return absl::Status(vae.status().code(),
                        absl::StrCat("Wan VAE: ", vae.status().message()));
  }
  if (vae->config().z_dim != latent_channels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Wan VAE: z_dim = ", vae->config().z_dim,
        " (from its weights) must equal the DiT's out_channels = ",
        latent_channels));
  }
  return std::unique_ptr<LatentDecoder>(
      std::make_unique<WanVaeDecoder>(*std::move(vae)));
}

}  // namespace dserve::models
