#ifndef DSERVE_WORKER_MODELS_RANDOM_WEIGHTS_H_
#define DSERVE_WORKER_MODELS_RANDOM_WEIGHTS_H_

// Deterministic random weights for a pipeline config: the built-in default
// model until a trained one ships, and the weights every model test uses.
//
// Init (chosen so activations stay O(1) through the blocks):
//   linear / conv weights  N(0, 1/fan_in)       biases  N(0, 0.02²)
//   norm weights           1 + N(0, 0.05²)      norm biases N(0, 0.02²)
//   modulation             N(0, 1/dim)          token embedding N(0, 1)
//   position embedding     N(0, 0.1²)
// Unlike Wan (which zero-initialises head.head.weight, making an untrained
// model ignore its input) the head is random, so tests can see every path.
//
// Stateless and thread-safe. The same (config, seed) gives the same bits
// for a given LibTorch build and CPU feature set (one CPU generator, keys
// drawn in a fixed order); LibTorch's vectorised (AVX2) and scalar normal
// samplers may differ in the last bits, so ship weights as files rather than
// regenerating them on another kind of machine.

#include <cstdint>

#include "worker/models/model_config.h"

namespace dserve::models {

// DiT keys (Wan names, no prefix) plus "text_encoder." keys, fp32 CPU.
WeightMap RandomWeights(const PipelineConfig& config, uint64_t seed);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_RANDOM_WEIGHTS_H_
