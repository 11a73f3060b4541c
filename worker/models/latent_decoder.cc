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
  at::Tensor Decode(const at::Tensor& latents) const override {
    return ToUnitRange(latents.permute({0, 2, 3, 4, 1})).contiguous();
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
  at::Tensor Decode(const at::Tensor& latents) const override {
    // One item at a time: the VAE's activations dominate decode memory.
    std::vector<at::Tensor> videos;
    for (int64_t i = 0; i < latents.size(0); ++i) {
      at::Tensor video = ValueOrThrow(
          vae_.Decode(latents.narrow(0, i, 1).to(at::kFloat)), "WanVae::Decode");
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
