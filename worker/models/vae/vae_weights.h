#ifndef DSERVE_WORKER_MODELS_VAE_VAE_WEIGHTS_H_
#define DSERVE_WORKER_MODELS_VAE_VAE_WEIGHTS_H_

// What the VAE layers are built from: where they run (VaeNumerics), a reader
// that hands out checked, converted weights and remembers which keys were
// used, and the counter that gives each causal layer its slot in a
// CausalCache.
//
// A VaeWeightReader is a build-time helper: single-threaded, it borrows the
// WeightMap (which must outlive it) and blocks while copying tensors to the
// device.

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace dserve::models {

// Where the VAE runs and in which dtype (weights, activations). Wan decodes
// in fp32; the default is the CPU fp32 path the reference tests check.
struct VaeNumerics {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};

class VaeWeightReader {
 public:
  VaeWeightReader(const WeightMap& weights, const VaeNumerics& numerics);

  // weights[key] converted to the numerics' device and dtype.
  // INVALID_ARGUMENT names the key when it is missing, not floating point,
  // or its shape is not `shape`.
  absl::StatusOr<at::Tensor> Get(const std::string& key,
                                 const std::vector<int64_t>& shape);

  // INVALID_ARGUMENT naming (up to 5 of) the keys no Get asked for: a
  // checkpoint with layers this code would silently skip.
  absl::Status CheckAllUsed() const;

  const VaeNumerics& numerics() const { return numerics_; }

 private:
  const WeightMap& weights_;
  VaeNumerics numerics_;
  std::set<std::string> used_;
};

// Slot numbering for one stream (decoder or encoder): each CausalConv3d
// with temporal padding and each temporal resample takes the next index.
struct CacheSlots {
  int tails = 0;     // CausalCache::tails entries
  int resamples = 0; // CausalCache::started entries
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_VAE_VAE_WEIGHTS_H_
