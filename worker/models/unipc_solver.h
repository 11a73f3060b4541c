#ifndef DSERVE_WORKER_MODELS_UNIPC_SOLVER_H_
#define DSERVE_WORKER_MODELS_UNIPC_SOLVER_H_

// Wan2.1's flow UniPC multistep solver (FlowUniPCMultistepScheduler with
// solver_order 2, bh2, predict_x0, lower_order_final, the corrector on), as
// written in /work/shared/reference/wan21_pipeline.md §4.
//
// With α = 1 − σ, λ(σ) = ln α − ln σ and m_i = x_i − σ_i·v_i (the x0
// prediction from the guided velocity at step i), step i of N:
//   corrector (i >= 1), h = λ_i − λ_{i−1}, φ = e^(−h) − 1, x̄ = the sample
//     the previous predictor started from:
//     x_i ← (σ_i/σ_{i−1})·x̄ − α_i·φ·m_{i−1} − α_i·φ·(C + ρ·(m_i − m_{i−1}))
//     with the previous predictor's order: 1 → C = 0, ρ = 1/2; 2 → r =
//     (λ_{i−2} − λ_{i−1})/h, D = (m_{i−2} − m_{i−1})/r, k = φ/(−h) − 1,
//     b1 = k/φ, b2 = 2(k/(−h) − 1/2)/φ, [[1,1],[r,1]]·(ρ0, ρ) = (b1, b2),
//     C = ρ0·D;
//   predictor from the corrected x_i, order p = min(2, N − i, i + 1):
//     σ_{i+1} = 0 → x_{i+1} = m_i; else h = λ_{i+1} − λ_i, φ = e^(−h) − 1,
//     x_{i+1} = (σ_{i+1}/σ_i)·x_i − α_{i+1}·φ·m_i
//               − [p = 2] α_{i+1}·φ·(1/2)·(m_{i−1} − m_i)/r,
//     r = (λ_{i−1} − λ_i)/h.
// Scalar coefficients are computed in f64 from the schedule's sigmas; the
// tensor arithmetic runs in the tensors' dtype on their device.
//
// UniPCHistory is the solver's memory between steps; it lives in the
// DenoiseState (so a cancelled or batched generation carries its own).
// Functions are pure apart from the history they are given; not
// thread-safe on one history.

#include <vector>

#include <ATen/core/Tensor.h>

namespace dserve::models {

struct UniPCHistory {
  // The (corrected) sample the last predictor started from, x̄.
  at::Tensor last_sample;
  // m_{i−1} and m_{i−2} (undefined until that many steps are done).
  at::Tensor m_prev;
  at::Tensor m_prev2;
  // Order of the last predictor step (0 before the first step).
  int last_order = 0;
  // Steps done so far; the next UniPCStep must be for this index.
  int steps_done = 0;
};

// Advances x_i (the current sample at sigmas[i]) to x_{i+1} given the x0
// prediction m_i = x_i − σ_i·v_i. `sigmas` has N + 1 entries, sigmas[N] = 0,
// every other entry in (0, 1). TORCH_CHECKs that i == history.steps_done.
at::Tensor UniPCStep(const std::vector<double>& sigmas, int i,
                     const at::Tensor& x, const at::Tensor& m,
                     UniPCHistory& history);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_UNIPC_SOLVER_H_
