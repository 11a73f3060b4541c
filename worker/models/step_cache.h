#ifndef DSERVE_WORKER_MODELS_STEP_CACHE_H_
#define DSERVE_WORKER_MODELS_STEP_CACHE_H_

// Step cache (First-Block-Cache style, with TeaCache-style accumulation):
// adjacent denoising steps change the DiT's hidden states little, so a step
// may skip every block after the first and add the residual those blocks
// produced at the last computed step instead.
//
// Signal: block 0 always runs. Its residual r = x_after_block0 − x_embedded
// is compared with the previous step's: δ = Σ|r − r_prev| / Σ|r_prev|
// (relative L1 over the whole model batch, so the CFG branches and batched
// items share ONE decision). δ is accumulated since the last computed step;
// the step is reused while the sum stays < threshold, once warmup_steps
// steps have run, at most max_reused_in_a_row steps in a row, and never on
// the last step (it sets the fine detail). A computed step resets the sum.
//
// What a reused step adds: the last computed step's remaining-blocks
// residual R_last, moved along its trend (a damped first-order
// extrapolation, TaylorSeer / Cache-DiT calibrator style):
//   R_last + extrapolation · (k / gap) · (R_last − R_prev)
// k = steps since the last computed step, gap = steps between the last two
// computed ones (R_prev: the residual of the computed step before). Plain
// R_last until two computed residuals exist. extrapolation 0 is plain
// reuse, 1 the full linear step; 0.5 measured best of 0, 0.3, 0.5, 0.7 and
// 1 on the default model (README "Step cache": the full step overshoots
// where the residual curves, plain reuse lags). Elementwise and linear, so
// each rank's shard (and PP stage) of it is that part of the 1-process one.
//
// Why the first block's residual and not TeaCache's modulated-input
// estimate: it needs no per-model fitted polynomial, it measures the actual
// network response at this step, and it is computed from data every rank
// layout already has (the first block's output, sharded like the
// activations), so a multi-rank decision is two reduced scalars.
//
// Ownership / threading: StepCacheState owns the cached tensors of one
// generation (on the activations' device, fp32 like the residual stream):
// block 0's residual of the previous step and the remaining-blocks
// residuals of the last two computed steps (the second one only while
// extrapolation > 0);
// it is used by one thread at a time, like the DenoiseState holding it.
// Functions block until their compute is done (the decision reads one
// scalar back from the device).

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "worker/models/dit.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

struct StepCacheConfig {
  // Off: the plain forward, nothing measured. On with threshold 0: every
  // step is computed through the cached path (bit-identical to off).
  bool enabled = false;
  // Reuse while the accumulated relative L1 change < threshold.
  double threshold = 0.0;
  // The first warmup_steps steps are always computed.
  int warmup_steps = 0;
  // At most this many reused steps in a row (0 = no reuse).
  int max_reused_in_a_row = 0;
  // Weight of the first-order term of the reused residual (see above; >= 0):
  // 0 = the last computed residual as is. Not a request field: every
  // request gets the measured default.
  double extrapolation = 0.5;
  // The last final_computed_steps steps are always computed (values < 1
  // count as 1: the last step is never reused). A late-step guard, measured
  // and not adopted (README "Step cache"); kept for bench --configs.
  int final_computed_steps = 1;
};

// What the policy sees at one step (a snapshot; pure data).
struct StepCacheSnapshot {
  int step = 0;             // 0-based index of the step being taken
  int num_steps = 0;        // steps of the generation
  bool have_cache = false;  // a computed step's residual is cached
  double accumulated = 0;   // Σ δ since the last computed step, incl. this
  int reused_in_a_row = 0;  // reused steps just before this one
};

// The decision rule, a pure function: true = reuse the cached residual.
bool ShouldReuseStep(const StepCacheConfig& config,
                     const StepCacheSnapshot& snapshot);

// Cache state of one generation; lives in DenoiseState.
struct StepCacheState {
  at::Tensor prev_first_residual;  // block 0's residual at the previous step
  at::Tensor remaining_residual;   // x_end − x_after_block0, last computed
  // The computed step's residual before remaining_residual (undefined while
  // extrapolation is 0), and the steps both were computed at.
  at::Tensor prev_remaining_residual;
  int remaining_step = -1;
  int prev_remaining_step = -1;
  double accumulated = 0;
  int reused_in_a_row = 0;
  int steps_computed = 0;
  int steps_reused = 0;
};

// Σ|a − b| and Σ|b| as float64 scalars on the host: the parts of δ, so
// sharded ranks can add theirs before dividing.
struct L1Parts {
  double diff = 0;
  double base = 0;
};
L1Parts RelativeL1Parts(const at::Tensor& current, const at::Tensor& previous);

// δ from (possibly summed) parts; 0/0 → +inf (nothing to compare yet).
double RelativeL1(const L1Parts& parts);

// The same two sums as a [2] float64 tensor on `current`'s device, not read
// back: what a sharded rank adds to its neighbours' with one small
// all-reduce before anyone divides (ParallelDiT).
at::Tensor RelativeL1PartsTensor(const at::Tensor& current,
                                 const at::Tensor& previous);

// One step's decision from the (possibly summed) parts: adds δ to
// state.accumulated when `comparable` (a previous first-block residual of
// the same shape exists), then asks ShouldReuseStep. `have_cache`: a
// computed step's residual is cached. Touches only state.accumulated.
bool DecideStep(const StepCacheConfig& config, int step, int num_steps,
                bool comparable, bool have_cache, const L1Parts& parts,
                StepCacheState& state);

// Records the outcome of a decision in the counters (and resets the
// accumulated change after a computed step). Call once per step.
void RecordStep(bool reused, StepCacheState& state);

// Caches the remaining-blocks residual of the computed step `step`; the
// one it replaces becomes prev_remaining_residual when config.extrapolation
// > 0 (and is dropped otherwise).
void CacheRemainingResidual(const StepCacheConfig& config,
                            const at::Tensor& residual, int step,
                            StepCacheState& state);

// The residual the reused step `step` adds (see above): R_last, or its
// damped extrapolation when two computed residuals of the same shape are
// cached. On R_last's device, in its dtype.
at::Tensor ReusedResidual(const StepCacheConfig& config, int step,
                          const StepCacheState& state);

// One step's cache, as Pipeline::Step hands it to a GuidedPredictor
// (pipeline.h): the predictor must make the decision and call RecordStep
// exactly once (ParallelDiT::GuidedPrediction does, collectively).
// Borrowed pointers into the DenoiseState; valid for that one call.
struct StepCacheStep {
  const StepCacheConfig* config = nullptr;
  int step = 0;
  int num_steps = 0;
  StepCacheState* state = nullptr;
};

// The whole DiT forward of one step with the cache: Embed, block 0,
// decision, then either the remaining blocks (caching their residual) or
// the cached residual, then Head. Updates `state`'s counters. `step` and
// `num_steps` feed the policy. Same contract as DiT::Forward otherwise; the
// DiT must hold every block and the head.
at::Tensor CachedDiTForward(const DiT& dit, const at::Tensor& latents,
                            const at::Tensor& timesteps,
                            const at::Tensor& context,
                            const StepCacheConfig& config, int step,
                            int num_steps, StepCacheState& state);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_STEP_CACHE_H_
