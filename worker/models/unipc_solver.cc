#include "worker/models/unipc_solver.h"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>

namespace dserve::models {
namespace {

double Lambda(double sigma) { return std::log(1.0 - sigma) - std::log(sigma); }

}  // namespace

at::Tensor UniPCStep(const std::vector<double>& sigmas, int i,
                     const at::Tensor& x, const at::Tensor& m,
                     UniPCHistory& history) {
  const int n = static_cast<int>(sigmas.size()) - 1;
  TORCH_CHECK(i >= 0 && i < n, "UniPCStep: step ", i, " outside [0, ", n, ")");
  TORCH_CHECK(i == history.steps_done, "UniPCStep: step ", i,
              " but the history has ", history.steps_done, " steps");
  TORCH_CHECK(sigmas[i] > 0.0 && sigmas[i] < 1.0, "UniPCStep: sigma[", i,
              "] = ", sigmas[i], " must be in (0, 1)");
  const double sigma_i = sigmas[i];
  const double alpha_i = 1.0 - sigma_i;
  const double lambda_i = Lambda(sigma_i);

  // Corrector: refine x_i with the new model output m_i.
  at::Tensor sample = x;
  if (i >= 1) {
    TORCH_CHECK(history.last_sample.defined() && history.m_prev.defined(),
                "UniPCStep: step ", i, " without the previous step's history");
    const double sigma_p = sigmas[i - 1];
    const double lambda_p = Lambda(sigma_p);
    const double h = lambda_i - lambda_p;
    const double phi = std::expm1(-h);
    const at::Tensor& m_p = history.m_prev;
    double rho = 0.5;
    at::Tensor correction;
    if (history.last_order >= 2) {
      TORCH_CHECK(history.m_prev2.defined(), "UniPCStep: order 2 at step ", i,
                  " without m_{i-2}");
      const double r = (Lambda(sigmas[i - 2]) - lambda_p) / h;
      const double k = phi / (-h) - 1.0;
      const double b1 = k / phi;
      const double b2 = 2.0 * (k / (-h) - 0.5) / phi;
      // [[1, 1], [r, 1]] (rho0, rho) = (b1, b2).
      const double rho0 = (b1 - b2) / (1.0 - r);
      rho = b1 - rho0;
      correction = (history.m_prev2 - m_p) * (rho0 / r);
    }
    at::Tensor res = (m - m_p) * rho;
    if (correction.defined()) res = res + correction;
    sample = history.last_sample * (sigma_i / sigma_p) -
             m_p * (alpha_i * phi) - res * (alpha_i * phi);
  }

  // Predictor from the corrected sample.
  const int order = std::min({2, n - i, i + 1});
  const double sigma_next = sigmas[i + 1];
  at::Tensor next;
  if (sigma_next == 0.0) {
    next = m;
  } else {
    const double alpha_next = 1.0 - sigma_next;
    const double h = Lambda(sigma_next) - lambda_i;
    const double phi = std::expm1(-h);
    next = sample * (sigma_next / sigma_i) - m * (alpha_next * phi);
    if (order == 2) {
      const double r = (Lambda(sigmas[i - 1]) - lambda_i) / h;
      next = next - (history.m_prev - m) * (alpha_next * phi * 0.5 / r);
    }
  }
  history.last_sample = sample;
  history.m_prev2 = history.m_prev;
  history.m_prev = m;
  history.last_order = order;
  history.steps_done = i + 1;
  return next;
}

}  // namespace dserve::models
