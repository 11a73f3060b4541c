#ifndef DSERVE_WORKER_MODELS_PIXELS_H_
#define DSERVE_WORKER_MODELS_PIXELS_H_

// Float image tensors → 8-bit RGB bytes for the PNG encoder (common/png
// stays free of torch). Stateless, thread-safe, blocking.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

// [H, W, 3] floating tensor in [0, 1] (values outside are clamped) →
// row-major RGB bytes, round(x·255). INVALID_ARGUMENT for another shape or
// dtype.
absl::StatusOr<std::vector<uint8_t>> ToRgb8(const at::Tensor& image);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_PIXELS_H_
