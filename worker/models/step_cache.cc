#include "worker/models/step_cache.h"

#include <algorithm>
#include <limits>
#include <utility>

#include <ATen/ATen.h>

namespace dserve::models {

bool ShouldReuseStep(const StepCacheConfig& config,
                     const StepCacheSnapshot& s) {
  if (!config.enabled || !s.have_cache) return false;
  if (s.step < config.warmup_steps) return false;
  // The last step(s) set the fine detail: always computed.
  if (s.step >= s.num_steps - std::max(1, config.final_computed_steps)) {
    return false;
  }
  if (s.reused_in_a_row >= config.max_reused_in_a_row) return false;
  return s.accumulated < config.threshold;
}

L1Parts RelativeL1Parts(const at::Tensor& current,
                        const at::Tensor& previous) {
  // One host read of two float64 sums.
  at::Tensor sums = RelativeL1PartsTensor(current, previous).cpu();
  const double* p = sums.data_ptr<double>();
  return {p[0], p[1]};
}

double RelativeL1(const L1Parts& parts) {
  if (parts.base <= 0) {
    return parts.diff <= 0 ? 0.0 : std::numeric_limits<double>::infinity();
  }
  return parts.diff / parts.base;
}

at::Tensor RelativeL1PartsTensor(const at::Tensor& current,
                                 const at::Tensor& previous) {
  return at::stack({(current - previous).abs().sum(at::kDouble),
                    previous.abs().sum(at::kDouble)});
}

bool DecideStep(const StepCacheConfig& config, int step, int num_steps,
                bool comparable, bool have_cache, const L1Parts& parts,
                StepCacheState& state) {
  if (comparable) state.accumulated += RelativeL1(parts);
  StepCacheSnapshot snap;
  snap.step = step;
  snap.num_steps = num_steps;
  snap.have_cache = comparable && have_cache;
  snap.accumulated = state.accumulated;
  snap.reused_in_a_row = state.reused_in_a_row;
  return ShouldReuseStep(config, snap);
}

void RecordStep(bool reused, StepCacheState& state) {
  if (reused) {
    ++state.reused_in_a_row;
    ++state.steps_reused;
  } else {
    state.accumulated = 0;
    state.reused_in_a_row = 0;
    ++state.steps_computed;
  }
}

void CacheRemainingResidual(const StepCacheConfig& config,
                            const at::Tensor& residual, int step,
                            StepCacheState& state) {
  if (config.extrapolation > 0) {
    state.prev_remaining_residual = std::move(state.remaining_residual);
    state.prev_remaining_step = state.remaining_step;
  } else {
    state.prev_remaining_residual = at::Tensor();
    state.prev_remaining_step = -1;
  }
  state.remaining_residual = residual;
  state.remaining_step = step;
}

at::Tensor ReusedResidual(const StepCacheConfig& config, int step,
                          const StepCacheState& state) {
  const at::Tensor& last = state.remaining_residual;
  const at::Tensor& prev = state.prev_remaining_residual;
  const int gap = state.remaining_step - state.prev_remaining_step;
  const int k = step - state.remaining_step;
  if (config.extrapolation <= 0 || !prev.defined() ||
      prev.sizes() != last.sizes() || state.prev_remaining_step < 0 ||
      gap <= 0 || k <= 0) {
    return last;
  }
  // last + w·(last − prev): one more residual-sized temporary.
  return at::add(last, last - prev,
                 config.extrapolation * static_cast<double>(k) / gap);
}

at::Tensor CachedDiTForward(const DiT& dit, const at::Tensor& latents,
                            const at::Tensor& timesteps,
                            const at::Tensor& context,
                            const StepCacheConfig& config, int step,
                            int num_steps, StepCacheState& state) {
  const int layers = dit.config().num_layers;
  DiTActivations a = dit.Embed(latents, timesteps, context);
  const at::Tensor x_in = a.x;
  dit.RunBlocks(a, 0, 1);
  const at::Tensor first_residual = a.x - x_in;
  const at::Tensor x_first = a.x;
  const bool shapes_match =
      state.prev_first_residual.defined() &&
      state.prev_first_residual.sizes() == first_residual.sizes();
  L1Parts parts;
  if (shapes_match) {
    parts = RelativeL1Parts(first_residual, state.prev_first_residual);
  }
  const bool reuse =
      DecideStep(config, step, num_steps, shapes_match,
                 state.remaining_residual.defined(), parts, state);
  state.prev_first_residual = first_residual;
  if (reuse) {
    a.x = x_first + ReusedResidual(config, step, state);
  } else {
    dit.RunBlocks(a, 1, layers);
    CacheRemainingResidual(config, a.x - x_first, step, state);
  }
  RecordStep(reuse, state);
  return dit.Head(a);
}

}  // namespace dserve::models
