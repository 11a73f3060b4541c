#include "common/cost_estimate.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dserve::common {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool PositiveFinite(double v) { return std::isfinite(v) && v > 0; }

}  // namespace

int64_t TokenCount(const TokenGeometry& g, int width, int height,
                   int num_frames) {
  const int64_t px = std::max(1, g.pixels_per_token);
  const int64_t latent_frames =
      (std::max(1, num_frames) - 1) / std::max(1, g.frames_per_latent_frame) +
      1;
  const int64_t tokens = CeilDiv(latent_frames, std::max(1, g.frames_per_token)) *
                         CeilDiv(std::max(1, width), px) *
                         CeilDiv(std::max(1, height), px);
  return std::max<int64_t>(1, tokens);
}

double EvaluationSeconds(const StepCost& cost, int64_t tokens) {
  const double t = static_cast<double>(tokens);
  return cost.seconds_per_token * t + cost.seconds_per_token_squared * t * t;
}

double EstimateJobSeconds(const TokenGeometry& geometry, const StepCost& cost,
                          const JobShape& shape) {
  const int64_t tokens =
      TokenCount(geometry, shape.width, shape.height, shape.num_frames);
  const int evaluations =
      shape.guided ? std::max(1, cost.guided_evaluations) : 1;
  return std::max(0, shape.num_steps) * evaluations *
         EvaluationSeconds(cost, tokens);
}

absl::StatusOr<StepCost> FitStepCost(int64_t tokens_small, double seconds_small,
                                     int64_t tokens_large,
                                     double seconds_large) {
  if (tokens_small < 1 || tokens_large <= tokens_small) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cost fit: token counts ", tokens_small, " and ", tokens_large,
        " must be increasing and at least 1"));
  }
  if (!PositiveFinite(seconds_small) || !PositiveFinite(seconds_large)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cost fit: timings ", seconds_small, " s and ", seconds_large,
        " s must be positive and finite"));
  }
  const double t1 = static_cast<double>(tokens_small);
  const double t2 = static_cast<double>(tokens_large);
  const double r1 = seconds_small / t1;
  const double r2 = seconds_large / t2;
  StepCost cost;
  // a*t + b*t^2 through both points: b = (r2 - r1) / (t2 - t1), a = r1 - b*t1.
  double b = (r2 - r1) / (t2 - t1);
  double a = r1 - b * t1;
  if (b < 0) {
    b = 0;
    a = std::max(r1, r2);
  } else if (a < 0) {
    a = 0;
    b = std::max(seconds_small / (t1 * t1), seconds_large / (t2 * t2));
  }
  cost.seconds_per_token = a;
  cost.seconds_per_token_squared = b;
  return cost;
}

std::string FormatSeconds(double seconds) {
  if (seconds >= 10) return absl::StrFormat("%.0f s", seconds);
  if (seconds >= 0.1) return absl::StrFormat("%.2f s", seconds);
  return absl::StrFormat("%.2f ms", seconds * 1e3);
}

absl::Status CheckJobCost(const TokenGeometry& geometry, const StepCost& cost,
                          const JobShape& shape, double max_job_seconds) {
  if (max_job_seconds <= 0) return absl::OkStatus();
  const double seconds = EstimateJobSeconds(geometry, cost, shape);
  if (seconds <= max_job_seconds) return absl::OkStatus();
  const int64_t tokens =
      TokenCount(geometry, shape.width, shape.height, shape.num_frames);
  const int evaluations =
      shape.guided ? std::max(1, cost.guided_evaluations) : 1;
  return absl::InvalidArgumentError(absl::StrCat(
      "estimated cost ", FormatSeconds(seconds),
      " of replica time is over the server's --max_job_seconds=",
      FormatSeconds(max_job_seconds), " (", shape.width, "x", shape.height,
      "x", shape.num_frames, " frames = ", tokens, " tokens, ",
      shape.num_steps, " steps x ", evaluations, " evaluation",
      evaluations == 1 ? "" : "s",
      shape.guided ? " (guided)" : "", " x ",
      FormatSeconds(EvaluationSeconds(cost, tokens)),
      " each; fewer num_inference_steps, num_frames, width or height, or "
      "guidance_scale 1, lower it)"));
}

}  // namespace dserve::common
