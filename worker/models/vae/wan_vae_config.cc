#include "worker/models/vae/wan_vae_config.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {
namespace {

using ShapeList = std::vector<std::pair<std::string, std::vector<int64_t>>>;

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// weights[key] with `dims` dimensions, or INVALID_ARGUMENT naming the key.
absl::StatusOr<at::Tensor> Find(const WeightMap& weights,
                                const std::string& key, int64_t dims) {
  auto it = weights.find(key);
  if (it == weights.end() || !it->second.defined()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Wan VAE weights: missing key \"", key, "\""));
  }
  if (it->second.dim() != dims) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Wan VAE weights: key \"", key, "\" has shape ",
        ShapeString(it->second.sizes()), ", expected ", dims, " dimensions"));
  }
  return it->second;
}

void AddConv(ShapeList& s, const std::string& name, int64_t out, int64_t in,
             std::vector<int64_t> kernel) {
  std::vector<int64_t> shape = {out, in};
  shape.insert(shape.end(), kernel.begin(), kernel.end());
  s.push_back({name + ".weight", shape});
  s.push_back({name + ".bias", {out}});
}

void AddResidual(ShapeList& s, const std::string& p, int64_t in, int64_t out) {
  s.push_back({p + ".residual.0.gamma", {in, 1, 1, 1}});
  AddConv(s, p + ".residual.2", out, in, {3, 3, 3});
  s.push_back({p + ".residual.3.gamma", {out, 1, 1, 1}});
  AddConv(s, p + ".residual.6", out, out, {3, 3, 3});
  if (in != out) AddConv(s, p + ".shortcut", out, in, {1, 1, 1});
}

void AddAttention(ShapeList& s, const std::string& p, int64_t dim) {
  s.push_back({p + ".norm.gamma", {dim, 1, 1}});
  AddConv(s, p + ".to_qkv", 3 * dim, dim, {1, 1});
  AddConv(s, p + ".proj", dim, dim, {1, 1});
}

void AddLayer(ShapeList& s, const std::string& p, const VaeLayerSpec& l) {
  switch (l.kind) {
    case VaeLayerKind::kResidual:
      AddResidual(s, p, l.in_dim, l.out_dim);
      break;
    case VaeLayerKind::kUpsample3d:
      AddConv(s, p + ".time_conv", 2 * l.in_dim, l.in_dim, {3, 1, 1});
      [[fallthrough]];
    case VaeLayerKind::kUpsample2d:
      AddConv(s, p + ".resample.1", l.out_dim, l.in_dim, {3, 3});
      break;
    case VaeLayerKind::kDownsample3d:
      AddConv(s, p + ".time_conv", l.in_dim, l.in_dim, {3, 1, 1});
      [[fallthrough]];
    case VaeLayerKind::kDownsample2d:
      AddConv(s, p + ".resample.1", l.out_dim, l.in_dim, {3, 3});
      break;
  }
}

// Middle [RB, attention, RB] and head [RMS_norm, SiLU, conv] of a Decoder3d
// or Encoder3d.
void AddMiddleAndHead(ShapeList& s, const std::string& p, int64_t middle,
                      int64_t head_in, int64_t head_out) {
  AddResidual(s, p + ".middle.0", middle, middle);
  AddAttention(s, p + ".middle.1", middle);
  AddResidual(s, p + ".middle.2", middle, middle);
  s.push_back({p + ".head.0.gamma", {head_in, 1, 1, 1}});
  AddConv(s, p + ".head.2", head_out, head_in, {3, 3, 3});
}

}  // namespace

int WanVaeConfig::spatial_factor() const {
  return 1 << std::max<int>(0, static_cast<int>(dim_mult.size()) - 1);
}

int WanVaeConfig::temporal_factor() const {
  return 1 << static_cast<int>(std::count(temporal_downsample.begin(),
                                          temporal_downsample.end(), true));
}

int64_t WanVaeConfig::VideoFrames(int64_t latent_frames) const {
  return 1 + temporal_factor() * (latent_frames - 1);
}

// Wan2.1 vae.py (WanVAE): the released latent statistics.
const std::array<float, kWanVaeLatentChannels>& WanVaeLatentMean() {
  static const std::array<float, kWanVaeLatentChannels> kMean = {
      -0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f,
      -0.1517f, 1.5508f,  0.4134f,  -0.0715f, 0.5517f, -0.3632f,
      -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
  return kMean;
}

const std::array<float, kWanVaeLatentChannels>& WanVaeLatentStd() {
  static const std::array<float, kWanVaeLatentChannels> kStd = {
      2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
      3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};
  return kStd;
}

absl::Status ValidateWanVaeConfig(const WanVaeConfig& c) {
  if (c.base_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Wan VAE config: base_dim = ", c.base_dim,
                     "; must be positive"));
  }
  if (c.z_dim != kWanVaeLatentChannels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Wan VAE config: z_dim = ", c.z_dim, "; the Wan 2.1 latent mean/std ",
        "are defined for z_dim ", kWanVaeLatentChannels));
  }
  if (c.dim_mult.empty()) {
    return absl::InvalidArgumentError(
        "Wan VAE config: dim_mult is empty; needs at least one stage");
  }
  for (int m : c.dim_mult) {
    if (m <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("Wan VAE config: dim_mult = [",
                       absl::StrJoin(c.dim_mult, ", "),
                       "]; entries must be positive"));
    }
  }
  if (c.temporal_downsample.size() + 1 != c.dim_mult.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Wan VAE config: temporal_downsample has ",
        c.temporal_downsample.size(), " entries; dim_mult has ",
        c.dim_mult.size(), " stages, so ", c.dim_mult.size() - 1,
        " are needed"));
  }
  if (c.num_res_blocks < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Wan VAE config: num_res_blocks = ", c.num_res_blocks,
                     "; must be >= 0"));
  }
  return absl::OkStatus();
}

int64_t WanVaeMiddleDim(const WanVaeConfig& c) {
  return static_cast<int64_t>(c.base_dim) * c.dim_mult.back();
}

std::vector<VaeLayerSpec> WanVaeDecoderLayers(const WanVaeConfig& c) {
  const int n = static_cast<int>(c.dim_mult.size());
  std::vector<int64_t> dims = {WanVaeMiddleDim(c)};
  for (int i = n - 1; i >= 0; --i) {
    dims.push_back(static_cast<int64_t>(c.base_dim) * c.dim_mult[i]);
  }
  std::vector<VaeLayerSpec> layers;
  for (int i = 0; i < n; ++i) {
    // Every stage after the first starts from the halved output of the
    // previous stage's upsample.
    int64_t in = i == 0 ? dims[0] : dims[i] / 2;
    const int64_t out = dims[i + 1];
    for (int r = 0; r < c.num_res_blocks + 1; ++r) {
      layers.push_back({VaeLayerKind::kResidual, in, out});
      in = out;
    }
    if (i != n - 1) {
      const bool temporal = c.temporal_downsample[n - 2 - i];
      layers.push_back({temporal ? VaeLayerKind::kUpsample3d
                                 : VaeLayerKind::kUpsample2d,
                        out, out / 2});
    }
  }
  return layers;
}

std::vector<VaeLayerSpec> WanVaeEncoderLayers(const WanVaeConfig& c) {
  const int n = static_cast<int>(c.dim_mult.size());
  std::vector<VaeLayerSpec> layers;
  int64_t in = c.base_dim;
  for (int i = 0; i < n; ++i) {
    const int64_t out = static_cast<int64_t>(c.base_dim) * c.dim_mult[i];
    for (int r = 0; r < c.num_res_blocks; ++r) {
      layers.push_back({VaeLayerKind::kResidual, in, out});
      in = out;
    }
    if (i != n - 1) {
      layers.push_back({c.temporal_downsample[i] ? VaeLayerKind::kDownsample3d
                                                 : VaeLayerKind::kDownsample2d,
                        out, out});
    }
  }
  return layers;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> WanVaeWeightShapes(
    const WanVaeConfig& c) {
  ShapeList s;
  const int64_t z = c.z_dim;
  const int64_t middle = WanVaeMiddleDim(c);
  const int64_t last = static_cast<int64_t>(c.base_dim) * c.dim_mult.front();
  AddConv(s, "conv2", z, z, {1, 1, 1});
  AddConv(s, "decoder.conv1", middle, z, {3, 3, 3});
  std::vector<VaeLayerSpec> dec = WanVaeDecoderLayers(c);
  for (size_t i = 0; i < dec.size(); ++i) {
    AddLayer(s, absl::StrCat("decoder.upsamples.", i), dec[i]);
  }
  AddMiddleAndHead(s, "decoder", middle, last, 3);
  if (c.has_encoder) {
    AddConv(s, "conv1", 2 * z, 2 * z, {1, 1, 1});
    AddConv(s, "encoder.conv1", c.base_dim, 3, {3, 3, 3});
    std::vector<VaeLayerSpec> enc = WanVaeEncoderLayers(c);
    for (size_t i = 0; i < enc.size(); ++i) {
      AddLayer(s, absl::StrCat("encoder.downsamples.", i), enc[i]);
    }
    AddMiddleAndHead(s, "encoder", middle, middle, 2 * z);
  }
  return s;
}

absl::StatusOr<WanVaeConfig> InferWanVaeConfig(const WeightMap& weights) {
  WanVaeConfig c;
  absl::StatusOr<at::Tensor> conv2 = Find(weights, "conv2.weight", 5);
  if (!conv2.ok()) return conv2.status();
  c.z_dim = static_cast<int>(conv2->size(0));

  // Walk decoder.upsamples.N: residual blocks and resamples, split into
  // stages at each resample.
  std::vector<int64_t> widths;  // output width of each decoder stage
  std::vector<int> blocks;      // residual blocks of each stage
  std::vector<bool> temporal_up;
  widths.push_back(-1);
  blocks.push_back(0);
  for (int n = 0;; ++n) {
    const std::string p = absl::StrCat("decoder.upsamples.", n, ".");
    if (weights.count(p + "residual.0.gamma") > 0) {
      absl::StatusOr<at::Tensor> w = Find(weights, p + "residual.6.weight", 5);
      if (!w.ok()) return w.status();
      if (blocks.back() > 0 && widths.back() != w->size(0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Wan VAE weights: key \"", p, "residual.6.weight\" has ",
            w->size(0), " output channels; the blocks before it in its ",
            "stage have ", widths.back()));
      }
      widths.back() = w->size(0);
      ++blocks.back();
    } else if (weights.count(p + "resample.1.weight") > 0) {
      if (blocks.back() == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Wan VAE weights: \"", p, "resample.1.weight\" follows no ",
            "residual block; every decoder stage starts with one"));
      }
      temporal_up.push_back(weights.count(p + "time_conv.weight") > 0);
      widths.push_back(-1);
      blocks.push_back(0);
    } else {
      break;
    }
  }
  if (blocks.back() == 0) {
    return absl::InvalidArgumentError(
        "Wan VAE weights: no residual block in the decoder's last stage "
        "(missing key \"decoder.upsamples.N.residual.0.gamma\")");
  }
  for (size_t i = 1; i < blocks.size(); ++i) {
    if (blocks[i] != blocks[0]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Wan VAE weights: decoder stage ", i, " has ", blocks[i],
          " residual blocks, stage 0 has ", blocks[0],
          "; Wan uses the same count in every stage"));
    }
  }
  const int stages = static_cast<int>(widths.size());
  c.num_res_blocks = blocks[0] - 1;
  c.has_encoder = false;
  for (const auto& [key, tensor] : weights) {
    if (absl::StartsWith(key, "encoder.") || absl::StartsWith(key, "conv1.")) {
      c.has_encoder = true;
      break;
    }
  }
  int64_t base = widths.back();
  if (c.has_encoder) {
    absl::StatusOr<at::Tensor> w = Find(weights, "encoder.conv1.weight", 5);
    if (!w.ok()) return w.status();
    base = w->size(0);
  }
  c.base_dim = static_cast<int>(base);
  c.dim_mult.assign(stages, 0);
  for (int i = 0; i < stages; ++i) {
    if (widths[i] % base != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Wan VAE weights: decoder stage ", i, " is ", widths[i],
          " channels wide, not a multiple of base_dim ", base));
    }
    c.dim_mult[stages - 1 - i] = static_cast<int>(widths[i] / base);
  }
  c.temporal_downsample.assign(temporal_up.rbegin(), temporal_up.rend());
  absl::Status valid = ValidateWanVaeConfig(c);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Wan VAE weights imply an unsupported config: ", valid.message()));
  }
  return c;
}

}  // namespace dserve::models
