#ifndef DSERVE_WORKER_MODELS_FLOW_SCHEDULE_H_
#define DSERVE_WORKER_MODELS_FLOW_SCHEDULE_H_

// Flow-matching noise schedules: the sigmas the solver integrates over and
// the timesteps the DiT is conditioned on.
//
// Two kinds, chosen per model (PipelineConfig::schedule):
//   kDserve  dserve's own (the built-in model was trained on it):
//            σ̂_i = 1 − i/N for i = 0..N, σ_i = sσ̂/(1+(s−1)σ̂) (σ_0 = 1,
//            σ_N = 0), t_i = 1000·σ_i as a float.
//   kWan     Wan2.1's text2video (FlowUniPCMultistepScheduler.set_timesteps):
//            σ̂_i = linspace(σmax, 0, N+1)[i] for i < N with σmax = f32(0.999)
//            (numpy's linspace arithmetic, f64), σ_i = sσ̂/(1+(s−1)σ̂) in f64;
//            the DiT sees t_i = int64(1000·σ_i) (truncation); the solver uses
//            σ_i rounded to f32, and σ_N = 0.
//
// Plain values and pure functions: thread-safe, no I/O.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dserve::models {

enum class ScheduleKind {
  kDserve = 0,
  kWan = 1,
};

// "dserve" / "wan" (config.json's "schedule").
std::string ScheduleKindName(ScheduleKind kind);
absl::StatusOr<ScheduleKind> ParseScheduleKind(const std::string& name);

// The ODE solver of a generation (dserve.v1.Sampler's numbers).
enum class SamplerKind {
  // The model's PipelineConfig::default_sampler.
  kModelDefault = 0,
  // First-order Euler on the model's schedule.
  kFlowEuler = 1,
  // Wan's flow UniPC multistep (unipc_solver.h); needs a schedule whose
  // sigmas stay below 1 (ScheduleKind::kWan).
  kFlowUniPC = 2,
};

// "euler" / "unipc" (config.json's "default_sampler"); kModelDefault is
// not a valid config value.
std::string SamplerKindName(SamplerKind kind);
absl::StatusOr<SamplerKind> ParseSamplerKind(const std::string& name);

struct FlowSchedule {
  // N + 1 solver sigmas, decreasing, sigmas[N] = 0.
  std::vector<double> sigmas;
  // N DiT timesteps (integer-valued for kWan).
  std::vector<double> timesteps;
  int num_steps() const { return static_cast<int>(timesteps.size()); }
};

// Wan's largest sigma, f32(0.999) widened to double.
inline constexpr double kWanSigmaMax = static_cast<double>(0.999f);

// num_steps >= 1 and shift > 0 (TORCH_CHECK otherwise: callers validate).
FlowSchedule DserveFlowSchedule(int num_steps, double shift);
FlowSchedule WanFlowSchedule(int num_steps, double shift);
FlowSchedule MakeFlowSchedule(ScheduleKind kind, int num_steps, double shift);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_FLOW_SCHEDULE_H_
