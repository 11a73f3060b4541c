#include "worker/cost_calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"
#include "worker/plan_codec.h"

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionPlan;

// The first step of a plan pays for warm-up (allocations that later steps
// reuse); the fastest of the other two is kept.
constexpr int kCalibrationSteps = 3;

// Keeps the fastest step of a plan; never cancels.
class FastestStep final : public PlanObserver {
 public:
  bool ShouldCancel() override { return false; }
  void OnStepDone(const models::DenoiseState& /*state*/, int /*total*/,
                  double step_ms) override {
    fastest_ms_ = std::min(fastest_ms_, step_ms);
  }
  double fastest_ms() const { return fastest_ms_; }
  // The cost model covers the denoising steps; decoding would only make
  // every worker start slower (minutes for a real VAE on CPU).
  bool NeedsPixels() const override { return false; }

 private:
  double fastest_ms_ = std::numeric_limits<double>::infinity();
};

// The smallest multiple of `step` that is >= want, within [step, max].
int SideFor(int64_t want, int step, int max) {
  step = std::max(1, step);
  const int largest = std::max(step, max / step * step);
  const int64_t rounded = (want + step - 1) / step * step;
  return static_cast<int>(std::clamp<int64_t>(rounded, step, largest));
}

}  // namespace

common::TokenGeometry TokenGeometryOf(const models::PipelineConfig& config) {
  const bool wan_vae = config.decoder == "wan_vae";
  common::TokenGeometry g;
  g.pixels_per_token = (wan_vae ? 8 : 1) * std::max(1, config.dit.patch[1]);
  g.frames_per_latent_frame = wan_vae ? 4 : 1;
  g.frames_per_token = std::max(1, config.dit.patch[0]);
  return g;
}

ExecutionPlan CalibrationPlan(const models::PipelineConfig& config,
                              int64_t tokens) {
  const common::TokenGeometry g = TokenGeometryOf(config);
  const int64_t side_tokens = static_cast<int64_t>(
      std::ceil(std::sqrt(static_cast<double>(std::max<int64_t>(1, tokens)))));
  ExecutionPlan plan;
  plan.set_model(config.name);
  plan.set_width(SideFor(side_tokens * g.pixels_per_token, config.size_step,
                         config.max_width));
  plan.set_height(SideFor(side_tokens * g.pixels_per_token, config.size_step,
                          config.max_height));
  plan.set_num_frames(1);
  plan.set_num_inference_steps(kCalibrationSteps);
  plan.set_flow_shift(config.default_shift);
  plan.set_output_format(dserve::v1::OUTPUT_FORMAT_RAW_TENSOR);
  plan.set_fps(config.default_fps);
  auto* item = plan.add_items();
  item->set_job_id("cost-calibration");
  item->set_prompt("a red circle");
  item->set_seed(1);
  item->set_guidance_scale(1.0f);
  return plan;
}

absl::StatusOr<dserve::v1::CostModel> CalibrateCost(
    const models::PipelineConfig& config, RankLoop& loop,
    parallel::Communicator& world, const CostCalibrationOptions& options) {
  const absl::Time start = options.now();
  const common::TokenGeometry geometry = TokenGeometryOf(config);
  int64_t tokens[2];
  double seconds[2];
  const int64_t wanted[2] = {options.small_tokens, options.large_tokens};
  for (int i = 0; i < 2; ++i) {
    const ExecutionPlan plan = CalibrationPlan(config, wanted[i]);
    tokens[i] = common::TokenCount(geometry, plan.width(), plan.height(),
                                   plan.num_frames());
    if (i == 1 && tokens[1] == tokens[0]) {
      seconds[1] = seconds[0];  // The model's largest frame is this small.
      break;
    }
    // Checked before announcing it: every rank expects a plan's steps once
    // the PLAN command went out.
    RETURN_IF_ERROR(loop.ResolveSpec(plan).status());
    if (absl::Status s = SendCommand(world, Command::kPlan, plan); !s.ok()) {
      return absl::UnavailableError(
          absl::StrCat("cost calibration: plan broadcast failed: ",
                       s.message()));
    }
    FastestStep observer;
    absl::StatusOr<PlanOutput> out = loop.RunPlan(plan, &observer);
    if (!out.ok()) {
      return absl::Status(out.status().code(),
                          absl::StrCat("cost calibration at ", plan.width(),
                                       "x", plan.height(), ": ",
                                       out.status().message()));
    }
    seconds[i] = std::max(observer.fastest_ms(), 1e-3) / 1e3;
  }
  common::StepCost cost;
  if (tokens[1] > tokens[0]) {
    ASSIGN_OR_RETURN(cost, common::FitStepCost(tokens[0], seconds[0],
                                                tokens[1], seconds[1]));
  } else {
    cost.seconds_per_token = seconds[0] / static_cast<double>(tokens[0]);
  }
  dserve::v1::CostModel model;
  model.set_pixels_per_token(geometry.pixels_per_token);
  model.set_frames_per_latent_frame(geometry.frames_per_latent_frame);
  model.set_frames_per_token(geometry.frames_per_token);
  model.set_seconds_per_token(cost.seconds_per_token);
  model.set_seconds_per_token_squared(cost.seconds_per_token_squared);
  model.set_guided_evaluations(std::max(1, options.guided_evaluations));
  model.set_default_max_job_seconds(options.default_max_job_seconds);
  model.add_calibration_tokens(tokens[0]);
  if (tokens[1] > tokens[0]) model.add_calibration_tokens(tokens[1]);
  model.set_calibration_ms(absl::ToDoubleMilliseconds(options.now() - start));
  spdlog::info(
      "[job -] cost calibration: {} tokens {:.2f} ms, {} tokens {:.2f} ms per "
      "evaluation -> {:.3g} s/token + {:.3g} s/token^2, {} evaluation(s) per "
      "guided step; took {:.0f} ms",
      tokens[0], seconds[0] * 1e3, tokens[1], seconds[1] * 1e3,
      model.seconds_per_token(), model.seconds_per_token_squared(),
      model.guided_evaluations(), model.calibration_ms());
  return model;
}

}  // namespace dserve::worker
