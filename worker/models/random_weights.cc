#include "worker/models/random_weights.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "worker/models/dit.h"
#include "worker/models/text_encoder.h"
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace dserve::models {

WeightMap RandomWeights(const PipelineConfig& config, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes =
      DiTWeightShapes(config.dit);
  for (auto& entry : TextEncoderWeightShapes(config.text_encoder)) {
    shapes.push_back(std::move(entry));
  }
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  WeightMap weights;
  for (const auto& [key, shape] : shapes) {
    at::Tensor noise = at::randn(shape, gen, f32);
    const bool is_norm = absl::StrContains(key, "norm");
    at::Tensor w;
    if (absl::EndsWith(key, "modulation")) {
      w = noise / std::sqrt(static_cast<double>(config.dit.dim));
    } else if (absl::EndsWith(key, "token_embedding.weight")) {
      w = noise;
    } else if (absl::EndsWith(key, "position_embedding.weight")) {
      w = noise * 0.1;
    } else if (is_norm && absl::EndsWith(key, ".weight")) {
      w = noise * 0.05 + 1.0;
    } else if (absl::EndsWith(key, ".bias")) {
      w = noise * 0.02;
    } else {
      int64_t fan_in = 1;
      for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
      w = noise / std::sqrt(static_cast<double>(fan_in));
    }
    weights.emplace(key, w.contiguous());
  }
  return weights;
}

}  // namespace dserve::models
