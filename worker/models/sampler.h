#ifndef DSERVE_WORKER_MODELS_SAMPLER_H_
#define DSERVE_WORKER_MODELS_SAMPLER_H_

// Flow-matching Euler sampler with classifier-free guidance.
//
// Flow matching: x_σ = (1−σ)·x0 + σ·ε; the model's velocity is v = ε − x0,
// so x0 = x_σ − σ·v and an Euler step is x ← x + (σ_next − σ)·v.
//
// Schedule choice: σ = linspace(1, 0, N+1), then shifted
// σ' = s·σ / (1 + (s−1)·σ). Wan's UniPC starts at 0.999 because its
// multistep solver divides by (1−σ)-like terms; plain Euler has no such
// singularity, so we start at σ0 = 1 exactly (pure noise) and end at 0.
// Timesteps fed to the DiT are t = σ·1000 as floats (not truncated).
//
// All functions are stateless and thread-safe; tensor functions block until
// the result is computed.

#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace dserve::models {

// N+1 sigmas from 1 down to 0 after the shift. N >= 1, shift > 0.
std::vector<double> FlowMatchSigmas(int num_steps, double shift);

// The DiT timestep for `sigma`.
inline double SigmaToTimestep(double sigma) { return sigma * 1000.0; }

// x + (sigma_next − sigma)·v.
at::Tensor EulerStep(const at::Tensor& x, const at::Tensor& velocity,
                     double sigma, double sigma_next);

// x0 = x − σ·v.
at::Tensor X0FromVelocity(const at::Tensor& x, const at::Tensor& velocity,
                          double sigma);

// v = (x − x0)/σ for x0-predicting models; σ is clamped to >= 1e-4 so the
// last (σ → 0) steps stay finite.
at::Tensor VelocityFromX0(const at::Tensor& x, const at::Tensor& x0,
                          double sigma);

// One model evaluation: x [B, ...], timesteps [B], context [B, L, D].
using DenoiseFn = std::function<at::Tensor(
    const at::Tensor& x, const at::Tensor& timesteps,
    const at::Tensor& context)>;

// Classifier-free guidance, per item: out = u + g·(c − u). Items with
// g == 1 skip the unconditional pass (their output is the conditional
// prediction); the others run both branches in one batched call of size
// B + (#guided) — conditional rows first, then the unconditional rows of
// the guided items.
at::Tensor GuidedPrediction(const DenoiseFn& model, const at::Tensor& x,
                            const at::Tensor& timesteps,
                            const at::Tensor& cond_context,
                            const at::Tensor& uncond_context,
                            const std::vector<float>& guidance);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_SAMPLER_H_
