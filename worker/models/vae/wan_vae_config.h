#ifndef DSERVE_WORKER_MODELS_VAE_WAN_VAE_CONFIG_H_
#define DSERVE_WORKER_MODELS_VAE_WAN_VAE_CONFIG_H_

// Shapes of the Wan VAE 2.1 (Wan2.1_VAE.pth), inferred from a weight map so a
// tiny test VAE and the real one (base 96) go through the same code, plus the
// full list of checkpoint keys a config implies and the latent mean/std.
//
// Plain values and pure functions: thread-safe, no I/O.

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/models/model_config.h"

namespace dserve::models {

// Wan's WanVAE_ arguments. Defaults are the released Wan2.1 VAE's.
struct WanVaeConfig {
  int base_dim = 96;
  int z_dim = 16;
  // Encoder stage widths are base_dim * dim_mult[i]; the decoder runs them
  // in reverse.
  std::vector<int> dim_mult = {1, 2, 4, 4};
  // Residual blocks per encoder stage (the decoder has one more per stage).
  int num_res_blocks = 2;
  // Per encoder downsample (dim_mult.size() - 1 of them): true halves time
  // too (downsample3d). The decoder's upsamples are this list reversed.
  std::vector<bool> temporal_downsample = {false, true, true};
  // Whether the weights hold the encoder (encoder.*, conv1.*). The decoder
  // (decoder.*, conv2.*) is always required.
  bool has_encoder = true;

  // Pixels per latent along height and width: 2^(stages - 1).
  int spatial_factor() const;
  // Video frames per latent frame after the first: 2^(temporal downsamples).
  int temporal_factor() const;
  // Video frames of `latent_frames` latents: 1 + temporal_factor * (T - 1).
  int64_t VideoFrames(int64_t latent_frames) const;
};

// The released Wan2.1 latent statistics (16 channels): decode de-normalises
// z * std + mean, encode normalises (mu - mean) / std.
inline constexpr int kWanVaeLatentChannels = 16;
const std::array<float, kWanVaeLatentChannels>& WanVaeLatentMean();
const std::array<float, kWanVaeLatentChannels>& WanVaeLatentStd();

// One entry of a decoder `upsamples` / encoder `downsamples` Sequential,
// in Wan's order. For a residual block in_dim -> out_dim; for a resample
// in_dim is its width (out_dim: in_dim / 2 for upsamples, in_dim for
// downsamples).
enum class VaeLayerKind {
  kResidual,
  kUpsample2d,
  kUpsample3d,
  kDownsample2d,
  kDownsample3d,
};
struct VaeLayerSpec {
  VaeLayerKind kind = VaeLayerKind::kResidual;
  int64_t in_dim = 0;
  int64_t out_dim = 0;
};
// Wan's Decoder3d: per stage num_res_blocks + 1 residual blocks, then an
// upsample (3d where the reversed temporal_downsample says so) except
// after the last stage; each upsample halves the channels.
std::vector<VaeLayerSpec> WanVaeDecoderLayers(const WanVaeConfig& config);
// Wan's Encoder3d: per stage num_res_blocks residual blocks, then a
// downsample except after the last stage.
std::vector<VaeLayerSpec> WanVaeEncoderLayers(const WanVaeConfig& config);
// Width of the middle (attention) stage: base_dim * dim_mult.back().
int64_t WanVaeMiddleDim(const WanVaeConfig& config);

// Checks sizes are positive, dim_mult/temporal_downsample lengths agree and
// z_dim is 16 (the mean/std above). Errors name the field and value.
absl::Status ValidateWanVaeConfig(const WanVaeConfig& config);

// Reads the config from tensor shapes (ORIGINAL Wan key names, no prefix):
// z_dim from conv2.weight, the decoder stages from decoder.upsamples.N
// (residual blocks, resample.1, time_conv), widths from their kernels,
// base_dim from encoder.conv1 (or the decoder's last stage without an
// encoder). INVALID_ARGUMENT names the key that is missing or does not fit.
// Does not check every key: WanVaeWeightShapes + Create do that.
absl::StatusOr<WanVaeConfig> InferWanVaeConfig(const WeightMap& weights);

// Every checkpoint key `config` implies, with its shape, in a fixed order
// (194 for the released VAE; the encoder's only if has_encoder).
std::vector<std::pair<std::string, std::vector<int64_t>>> WanVaeWeightShapes(
    const WanVaeConfig& config);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_VAE_WAN_VAE_CONFIG_H_
