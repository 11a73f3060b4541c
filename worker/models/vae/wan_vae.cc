#include "worker/models/vae/wan_vae.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "worker/models/vae/wan_vae_decoder.h"
#include "worker/models/vae/wan_vae_encoder.h"
#include <ATen/ATen.h>

namespace dserve::models {

struct WanVae::Model {
  WanVaeConfig config;
  VaeNumerics numerics;
  CausalConv3d conv1;  // 1×1×1, 2z → 2z, after the encoder
  CausalConv3d conv2;  // 1×1×1, z → z, before the decoder
  WanVaeDecoder decoder;
  std::optional<WanVaeEncoder> encoder;
  at::Tensor mean, std;  // [1, z, 1, 1, 1] in numerics
};

namespace {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

at::Tensor StatTensor(const std::array<float, kWanVaeLatentChannels>& v,
                      const VaeNumerics& n) {
  return at::tensor(std::vector<float>(v.begin(), v.end()))
      .to(n.device, n.dtype)
      .view({1, kWanVaeLatentChannels, 1, 1, 1});
}

// Results are at least fp32 (bf16/fp16 compute returns fp32; f64 stays f64).
at::ScalarType OutputDtype(const VaeNumerics& n) {
  return at::promote_types(n.dtype, at::kFloat);
}

}  // namespace

absl::StatusOr<WanVae> WanVae::Create(const WeightMap& weights,
                                      const VaeNumerics& numerics) {
  ASSIGN_OR_RETURN(WanVaeConfig config, InferWanVaeConfig(weights));
  auto model = std::make_shared<Model>();
  model->config = config;
  model->numerics = numerics;
  absl::Status loaded;
  RETURN_IF_ERROR(CatchTorch("Wan VAE: loading weights", [&] {
    loaded = [&]() -> absl::Status {
      VaeWeightReader reader(weights, numerics);
      CacheSlots none;  // 1×1×1 convs keep no history
      const int64_t z = config.z_dim;
      ASSIGN_OR_RETURN(model->conv2, CausalConv3d::Load(reader, none, "conv2",
                                                        z, z, {1, 1, 1},
                                                        {0, 0, 0}));
      ASSIGN_OR_RETURN(model->decoder, WanVaeDecoder::Load(reader, config));
      if (config.has_encoder) {
        ASSIGN_OR_RETURN(model->conv1,
                         CausalConv3d::Load(reader, none, "conv1", 2 * z,
                                            2 * z, {1, 1, 1}, {0, 0, 0}));
        ASSIGN_OR_RETURN(model->encoder, WanVaeEncoder::Load(reader, config));
      }
      RETURN_IF_ERROR(reader.CheckAllUsed());
      model->mean = StatTensor(WanVaeLatentMean(), numerics);
      model->std = StatTensor(WanVaeLatentStd(), numerics);
      return absl::OkStatus();
    }();
  }));
  RETURN_IF_ERROR(loaded);
  return WanVae(std::move(model));
}

const WanVaeConfig& WanVae::config() const { return model_->config; }
const VaeNumerics& WanVae::numerics() const { return model_->numerics; }

absl::Status WanVae::CheckLatents(const at::Tensor& latents) const {
  const int64_t z = model_->config.z_dim;
  if (!latents.defined() || latents.dim() != 5 || latents.size(1) != z ||
      latents.numel() == 0 || !at::isFloatingType(latents.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Wan VAE decode: latents have shape ",
        latents.defined() ? ShapeString(latents.sizes()) : "(undefined)",
        "; expected non-empty float [B, ", z, ", T, h, w]"));
  }
  return absl::OkStatus();
}

absl::Status WanVae::CheckVideo(const at::Tensor& video) const {
  const WanVaeConfig& c = model_->config;
  if (!model_->encoder) {
    return absl::FailedPreconditionError(
        "Wan VAE encode: the weights have no encoder (encoder.*, conv1.*)");
  }
  const int64_t tf = c.temporal_factor(), s = c.spatial_factor();
  if (!video.defined() || video.dim() != 5 || video.size(1) != 3 ||
      video.numel() == 0 || !at::isFloatingType(video.scalar_type()) ||
      (video.size(2) - 1) % tf != 0 || video.size(3) % s != 0 ||
      video.size(4) % s != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Wan VAE encode: video has shape ",
        video.defined() ? ShapeString(video.sizes()) : "(undefined)",
        "; expected float [B, 3, 1 + ", tf, "k, H, W] with H and W ",
        "multiples of ", s));
  }
  return absl::OkStatus();
}

at::Tensor WanVae::DecodeChunk(const at::Tensor& latents,
                               CausalCache* cache) const {
  const Model& m = *model_;
  at::Tensor z = latents.to(m.numerics.device, m.numerics.dtype);
  z = z.mul(m.std).add_(m.mean);  // de-normalise
  at::Tensor video = m.decoder.Forward(m.conv2.Forward(z, nullptr), cache);
  return video.clamp_(-1.0, 1.0).to(OutputDtype(m.numerics));
}

absl::StatusOr<at::Tensor> WanVae::Decode(const at::Tensor& latents) const {
  RETURN_IF_ERROR(CheckLatents(latents));
  const WanVaeConfig& c = model_->config;
  const int64_t s = c.spatial_factor(), t = latents.size(2);
  at::Tensor out;
  RETURN_IF_ERROR(CatchTorch("Wan VAE decode", [&] {
    out = at::empty({latents.size(0), 3, c.VideoFrames(t),
                     latents.size(3) * s, latents.size(4) * s},
                    at::TensorOptions()
                        .dtype(OutputDtype(model_->numerics))
                        .device(model_->numerics.device));
    CausalCache cache = model_->decoder.NewCache();
    int64_t frame = 0;
    for (int64_t i = 0; i < t; ++i) {
      at::Tensor frames = DecodeChunk(latents.narrow(2, i, 1), &cache);
      out.narrow(2, frame, frames.size(2)).copy_(frames);
      frame += frames.size(2);
    }
  }));
  return out;
}

absl::StatusOr<at::Tensor> WanVae::DecodeOneShot(
    const at::Tensor& latents) const {
  RETURN_IF_ERROR(CheckLatents(latents));
  at::Tensor out;
  RETURN_IF_ERROR(CatchTorch("Wan VAE decode (one shot)",
                             [&] { out = DecodeChunk(latents, nullptr); }));
  return out;
}

WanVaeDecodeStream WanVae::NewDecodeStream() const {
  return WanVaeDecodeStream(*this, model_->decoder.NewCache());
}

absl::StatusOr<at::Tensor> WanVaeDecodeStream::Push(const at::Tensor& latents) {
  RETURN_IF_ERROR(vae_.CheckLatents(latents));
  if (!shape_.empty() &&
      (latents.size(0) != shape_[0] || latents.size(3) != shape_[3] ||
       latents.size(4) != shape_[4])) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Wan VAE decode stream: latents have shape ",
        ShapeString(latents.sizes()), " but the stream started with ",
        ShapeString(shape_), "; B, h and w must stay the same"));
  }
  at::Tensor out;
  RETURN_IF_ERROR(CatchTorch("Wan VAE decode stream", [&] {
    out = vae_.DecodeChunk(latents, &cache_);
  }));
  if (shape_.empty()) shape_ = latents.sizes().vec();
  pushed_ += latents.size(2);
  return out;
}

at::Tensor WanVae::EncodeChunks(const at::Tensor& video, bool chunked) const {
  const Model& m = *model_;
  at::Tensor x = video.to(m.numerics.device, m.numerics.dtype);
  at::Tensor h;
  if (chunked) {
    // Wan's chunks: frame 0 alone, then temporal_factor frames each, so
    // every downsample3d sees an even number of frames after the first.
    const int64_t tf = m.config.temporal_factor();
    CausalCache cache = m.encoder->NewCache();
    std::vector<at::Tensor> parts;
    for (int64_t start = 0; start < x.size(2);
         start += start == 0 ? 1 : tf) {
      const int64_t len = start == 0 ? 1 : tf;
      parts.push_back(m.encoder->Forward(x.narrow(2, start, len), &cache));
    }
    h = at::cat(parts, 2);
  } else {
    h = m.encoder->Forward(x, nullptr);
  }
  at::Tensor mu = m.conv1.Forward(h, nullptr).narrow(1, 0, m.config.z_dim);
  return mu.sub(m.mean).div_(m.std).to(OutputDtype(m.numerics));
}

absl::StatusOr<at::Tensor> WanVae::Encode(const at::Tensor& video) const {
  RETURN_IF_ERROR(CheckVideo(video));
  at::Tensor out;
  RETURN_IF_ERROR(CatchTorch("Wan VAE encode",
                             [&] { out = EncodeChunks(video, true); }));
  return out;
}

absl::StatusOr<at::Tensor> WanVae::EncodeOneShot(
    const at::Tensor& video) const {
  RETURN_IF_ERROR(CheckVideo(video));
  at::Tensor out;
  RETURN_IF_ERROR(CatchTorch("Wan VAE encode (one shot)",
                             [&] { out = EncodeChunks(video, false); }));
  return out;
}

}  // namespace dserve::models
