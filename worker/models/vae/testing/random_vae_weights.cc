#include "worker/models/vae/testing/random_vae_weights.h"

#include <cmath>

#include "absl/strings/match.h"
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace dserve::models {

WeightMap RandomWanVaeWeights(const WanVaeConfig& config, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  WeightMap weights;
  for (const auto& [key, shape] : WanVaeWeightShapes(config)) {
    at::Tensor t;
    if (absl::EndsWith(key, ".gamma")) {
      t = at::rand(shape, gen).add_(0.5);
    } else if (absl::EndsWith(key, ".bias")) {
      t = at::randn(shape, gen).mul_(0.1);
    } else {
      int64_t fan_in = 1;
      for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
      t = at::randn(shape, gen).mul_(1.0 / std::sqrt(fan_in));
    }
    weights[key] = t;
  }
  return weights;
}

WanVaeConfig TinyWanVaeConfig() {
  WanVaeConfig c;
  c.base_dim = 8;
  return c;
}

}  // namespace dserve::models
