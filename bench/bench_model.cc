#include "bench/bench_model.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/models/dit.h"
#include <ATen/ATen.h>

namespace dserve::bench {

using models::DiTConfig;

int64_t BenchShape::tokens() const {
  return (latent_frames / dit.patch[0]) * (latent_height / dit.patch[1]) *
         (latent_width / dit.patch[2]);
}

absl::StatusOr<BenchShape> MakeBenchShape(const std::string& model, int frames,
                                          int height, int width, int layers,
                                          int text_len) {
  BenchShape s;
  if (model == "wan1.3b") {
    s.dit = DiTConfig{};  // defaults are Wan2.1-T2V-1.3B's
    if (frames < 1 || (frames - 1) % 4 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--frames = ", frames, " is invalid; allowed: 4n+1 (1, 5, ..., 81)"));
    }
    if (height % 16 != 0 || width % 16 != 0 || height < 16 || width < 16) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--height/--width = ", height, "x", width,
          " is invalid; allowed: positive multiples of 16 (VAE 8 x patch 2)"));
    }
    s.latent_frames = (frames - 1) / 4 + 1;
    s.latent_height = height / 8;
    s.latent_width = width / 8;
    s.latent_channels = 16;
    s.coordinate_planes = false;
  } else if (model == "default") {
    models::PipelineConfig c = models::DefaultModelConfig();
    s.dit = c.dit;
    if (frames < 1 || height < c.dit.patch[1] || width < c.dit.patch[2] ||
        height % c.dit.patch[1] != 0 || width % c.dit.patch[2] != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--frames/--height/--width = ", frames, "/", height, "x", width,
          " is invalid; allowed: frames >= 1, sizes positive multiples of ",
          c.dit.patch[1]));
    }
    s.latent_frames = frames;
    s.latent_height = height;
    s.latent_width = width;
    s.latent_channels = c.latent_channels();
    s.coordinate_planes = c.coordinate_planes;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model = ", model, " is invalid; allowed: wan1.3b, default"));
  }
  if (layers < 0 || text_len < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--layers = ", layers, ", --text_len = ", text_len,
        " are invalid; allowed: >= 0 (0 = the model's)"));
  }
  if (layers > 0) s.dit.num_layers = layers;
  if (text_len > 0) s.dit.text_len = text_len;
  return s;
}

Flops ForwardFlops(const BenchShape& s, int batch) {
  const DiTConfig& c = s.dit;
  const double S = static_cast<double>(s.tokens());
  const double L = c.text_len, D = c.dim, F = c.ffn_dim;
  const double P = static_cast<double>(c.in_channels) * c.patch_volume();
  Flops f;
  // Per layer: self-attention q/k/v/o, cross-attention q/o and k/v (text),
  // FFN; attention core QK^T and PV for self (S x S) and cross (S x L).
  const double per_layer_linear =
      8 * S * D * D + 4 * S * D * D + 4 * L * D * D + 4 * S * D * F;
  const double per_layer_attention = 4 * S * S * D + 4 * S * L * D;
  f.linear = c.num_layers * per_layer_linear;
  f.attention = c.num_layers * per_layer_attention;
  // Patch, text MLP, time MLP + projection, head.
  f.linear += 2 * S * P * D + 2 * L * (c.text_dim * D + D * D) +
              2 * (c.freq_dim * D + D * D + D * 6 * D) +
              2 * S * D * c.out_channels * c.patch_volume();
  f.linear *= batch;
  f.attention *= batch;
  return f;
}

models::WeightMap RandomDiTWeights(const DiTConfig& c,
                                   const at::TensorOptions& opts) {
  models::WeightMap w;
  for (const auto& [key, shape] : models::DiTWeightShapes(c)) {
    at::Tensor t = at::randn(shape, opts);
    const bool is_norm = key.find("norm") != std::string::npos;
    const bool is_bias =
        key.size() > 5 && key.compare(key.size() - 5, 5, ".bias") == 0;
    if (key.find("modulation") != std::string::npos) {
      t.mul_(1.0 / std::sqrt(static_cast<double>(c.dim)));
    } else if (is_norm && !is_bias) {
      t.mul_(0.05).add_(1.0);
    } else if (shape.size() == 1) {
      t.mul_(0.02);
    } else {
      int64_t fan_in = 1;
      for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
      t.mul_(1.0 / std::sqrt(static_cast<double>(fan_in)));
    }
    w[key] = t;
  }
  return w;
}

void Sync(const at::Tensor& t) {
  if (!t.is_cpu()) (void)t.flatten().narrow(0, 0, 1).cpu();
}

}  // namespace dserve::bench
