#ifndef DSERVE_WORKER_MODELS_VAE_TESTING_RANDOM_VAE_WEIGHTS_H_
#define DSERVE_WORKER_MODELS_VAE_TESTING_RANDOM_VAE_WEIGHTS_H_

// Random float32 CPU weights for every key WanVaeWeightShapes(config)
// lists, scaled so activations stay O(1): gains U(0.5, 1.5), biases
// N(0, 0.1²), kernels N(0, 1/fan_in). Every weight is random (including the
// attention proj Wan zero-initialises), so tests reach every path.
// Deterministic in `seed`; stateless, thread-safe (own generator).

#include <cstdint>

#include "worker/models/model_config.h"
#include "worker/models/vae/wan_vae_config.h"

namespace dserve::models {

WeightMap RandomWanVaeWeights(const WanVaeConfig& config, uint64_t seed);

// Wan's tiny test config (wan21_pipeline.md §5): base 8, z 16, dim_mult
// [1,2,4,4], 2 res blocks, temporal [F, T, T].
WanVaeConfig TinyWanVaeConfig();

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_VAE_TESTING_RANDOM_VAE_WEIGHTS_H_
