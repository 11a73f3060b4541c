#ifndef DSERVE_BENCH_BENCH_MODEL_H_
#define DSERVE_BENCH_BENCH_MODEL_H_

// Shapes, random weights and analytic FLOPs shared by the DiT benchmarks
// (step_bench) and the reference tool (dit_reference_io).
//
// Plain functions over values; thread-safe. RandomDiTWeights and Sync block
// until their device work is done.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include <ATen/core/Tensor.h>

namespace dserve::bench {

// The DiT and the latent grid it runs on.
struct BenchShape {
  models::DiTConfig dit;
  int64_t latent_frames = 0, latent_height = 0, latent_width = 0;
  int latent_channels = 0;         // channels the sampler works on
  bool coordinate_planes = false;  // appended before the DiT (default model)
  int64_t tokens() const;
};

// model: "wan1.3b" (Wan2.1-T2V-1.3B; sizes in pixels, VAE 4x8x8) or
// "default" (the built-in pixel-space model). layers / text_len 0 = the
// model's. INVALID_ARGUMENT names the flag, its value and what is allowed.
absl::StatusOr<BenchShape> MakeBenchShape(const std::string& model, int frames,
                                          int height, int width, int layers,
                                          int text_len);

// Analytic FLOPs of one DiT forward over `batch` items (2 per multiply-add):
// linear layers (incl. embeddings and head) and the attention core.
struct Flops {
  double linear = 0;
  double attention = 0;
  double total() const { return linear + attention; }
};
Flops ForwardFlops(const BenchShape& s, int batch);

// Random weights in the Wan checkpoint layout, drawn with `opts` (on the
// device: a 1.3B model would take minutes to draw on the host): N(0,
// 1/fan_in) matrices, N(0, 0.02^2) biases, 1 + N(0, 0.05^2) norm weights,
// N(0, 1/dim) modulation. Uses the global generator (seed it first).
models::WeightMap RandomDiTWeights(const models::DiTConfig& c,
                                   const at::TensorOptions& opts);

// Waits for t's device (a one-element copy to the host). Not used inside a
// timed step's own work: it is what ends a GPU timing.
void Sync(const at::Tensor& t);

}  // namespace dserve::bench

#endif  // DSERVE_BENCH_BENCH_MODEL_H_
