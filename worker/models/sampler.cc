#include "worker/models/sampler.h"

#include <algorithm>

#include <ATen/ATen.h>

namespace dserve::models {
namespace {
constexpr double kMinSigma = 1e-4;
}  // namespace

std::vector<double> FlowMatchSigmas(int num_steps, double shift) {
  TORCH_CHECK(num_steps >= 1, "FlowMatchSigmas: num_steps = ", num_steps,
              ", must be >= 1");
  TORCH_CHECK(shift > 0, "FlowMatchSigmas: shift = ", shift, ", must be > 0");
  std::vector<double> sigmas(num_steps + 1);
  for (int i = 0; i <= num_steps; ++i) {
    const double s = 1.0 - static_cast<double>(i) / num_steps;
    sigmas[i] = shift * s / (1.0 + (shift - 1.0) * s);
  }
  return sigmas;
}

at::Tensor EulerStep(const at::Tensor& x, const at::Tensor& velocity,
                     double sigma, double sigma_next) {
  return x + velocity * (sigma_next - sigma);
}

at::Tensor X0FromVelocity(const at::Tensor& x, const at::Tensor& velocity,
                          double sigma) {
  return x - velocity * sigma;
}

at::Tensor VelocityFromX0(const at::Tensor& x, const at::Tensor& x0,
                          double sigma) {
  return (x - x0) / std::max(sigma, kMinSigma);
}

at::Tensor GuidedPrediction(const DenoiseFn& model, const at::Tensor& x,
                            const at::Tensor& timesteps,
                            const at::Tensor& cond_context,
                            const at::Tensor& uncond_context,
                            const std::vector<float>& guidance) {
  const int64_t b = x.size(0);
  TORCH_CHECK(static_cast<int64_t>(guidance.size()) == b,
              "GuidedPrediction: ", guidance.size(), " guidance scales for ",
              b, " items");
  std::vector<int64_t> guided;
  for (int64_t i = 0; i < b; ++i) {
    if (guidance[i] != 1.0f) guided.push_back(i);
  }
  if (guided.empty()) return model(x, timesteps, cond_context);
  if (static_cast<int64_t>(guided.size()) == b &&
      std::all_of(guidance.begin(), guidance.end(),
                  [&](float g) { return g == guidance[0]; })) {
    // Every item guided with one scale (the usual request): no index or
    // scale tensors to copy to the device, so a GPU step has no host sync.
    at::Tensor out = model(at::cat({x, x}), at::cat({timesteps, timesteps}),
                           at::cat({cond_context, uncond_context}));
    at::Tensor cond = out.narrow(0, 0, b);
    at::Tensor uncond = out.narrow(0, b, b);
    return uncond + guidance[0] * (cond - uncond);
  }
  at::Tensor idx = at::tensor(guided, at::kLong).to(x.device());
  at::Tensor out = model(at::cat({x, x.index_select(0, idx)}),
                         at::cat({timesteps, timesteps.index_select(0, idx)}),
                         at::cat({cond_context,
                                  uncond_context.index_select(0, idx)}));
  at::Tensor cond = out.narrow(0, 0, b);
  at::Tensor uncond = out.narrow(0, b, static_cast<int64_t>(guided.size()));
  std::vector<float> scales;
  for (int64_t i : guided) scales.push_back(guidance[i]);
  std::vector<int64_t> bshape(out.dim(), 1);
  bshape[0] = static_cast<int64_t>(guided.size());
  at::Tensor g = at::tensor(scales, out.options()).view(bshape);
  at::Tensor c = cond.index_select(0, idx);
  at::Tensor mixed = uncond + g * (c - uncond);
  return cond.clone().index_copy_(0, idx, mixed);
}

}  // namespace dserve::models
