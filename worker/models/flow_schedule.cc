#include "worker/models/flow_schedule.h"

#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "worker/models/sampler.h"
#include <c10/util/Exception.h>

namespace dserve::models {

std::string ScheduleKindName(ScheduleKind kind) {
  return kind == ScheduleKind::kWan ? "wan" : "dserve";
}

absl::StatusOr<ScheduleKind> ParseScheduleKind(const std::string& name) {
  if (name == "dserve") return ScheduleKind::kDserve;
  if (name == "wan") return ScheduleKind::kWan;
  return absl::InvalidArgumentError(absl::StrCat(
      "schedule = \"", name, "\" is unknown; allowed: \"dserve\", \"wan\""));
}

std::string SamplerKindName(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::kFlowEuler:
      return "euler";
    case SamplerKind::kFlowUniPC:
      return "unipc";
    default:
      return absl::StrCat("sampler#", static_cast<int>(kind));
  }
}

absl::StatusOr<SamplerKind> ParseSamplerKind(const std::string& name) {
  if (name == "euler") return SamplerKind::kFlowEuler;
  if (name == "unipc") return SamplerKind::kFlowUniPC;
  return absl::InvalidArgumentError(absl::StrCat(
      "sampler = \"", name, "\" is unknown; allowed: \"euler\", \"unipc\""));
}

FlowSchedule DserveFlowSchedule(int num_steps, double shift) {
  FlowSchedule s;
  s.sigmas = FlowMatchSigmas(num_steps, shift);
  for (int i = 0; i < num_steps; ++i) {
    s.timesteps.push_back(SigmaToTimestep(s.sigmas[i]));
  }
  return s;
}

FlowSchedule WanFlowSchedule(int num_steps, double shift) {
  TORCH_CHECK(num_steps >= 1, "WanFlowSchedule: num_steps = ", num_steps,
              ", must be >= 1");
  TORCH_CHECK(shift > 0, "WanFlowSchedule: shift = ", shift, ", must be > 0");
  FlowSchedule s;
  // numpy.linspace(start, 0, N + 1): y_i = i * ((0 - start) / N) + start.
  const double step = (0.0 - kWanSigmaMax) / num_steps;
  for (int i = 0; i < num_steps; ++i) {
    const double base = static_cast<double>(i) * step + kWanSigmaMax;
    const double sigma = shift * base / (1.0 + (shift - 1.0) * base);
    // The DiT sees the f64 sigma times 1000, truncated to int64; the solver
    // works with the f32 sigma.
    s.timesteps.push_back(
        static_cast<double>(static_cast<int64_t>(sigma * 1000.0)));
    s.sigmas.push_back(static_cast<double>(static_cast<float>(sigma)));
  }
  s.sigmas.push_back(0.0);
  return s;
}

FlowSchedule MakeFlowSchedule(ScheduleKind kind, int num_steps, double shift) {
  return kind == ScheduleKind::kWan ? WanFlowSchedule(num_steps, shift)
                                    : DserveFlowSchedule(num_steps, shift);
}

}  // namespace dserve::models
