// Checks Wan's schedule, the UniPC / Euler solvers and CFG as
// Pipeline::Step runs them against the reference cases `unipc` and
// `unipc_euler` of tools/reference/wan_reference.py:
//
//   wan_sampler_reference_check --case=unipc.safetensors --tol=1e-4
//
// The case holds the DiT's random weights (Wan names), input.noise,
// input.cond_context / input.uncond_context (real lengths 11 and 7, zero
// beyond), expected.timesteps (int64), expected.sigmas (the f32 solver
// sigmas as f64) and expected.latents after N steps of the case's solver
// with v = v_u + g (v_c − v_u). The checker builds a Pipeline around that
// DiT (Pipeline::Assemble), sets up the DenoiseState from the inputs and
// calls Pipeline::Step N times. Exits 1 if the timesteps or sigmas differ
// or the latents are off by more than --tol relative.

#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "worker/models/flow_schedule.h"
#include "worker/models/latent_decoder.h"
#include "worker/models/pipeline.h"
#include "worker/models/prompt_encoder.h"
#include "worker/models/safetensors.h"
#include "worker/models/testing/wan_case.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

ABSL_FLAG(std::string, case, "", "Reference case file (safetensors).");
ABSL_FLAG(double, tol, 1e-4, "Largest allowed max|d|/max|ref|.");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");

namespace dserve::models {
namespace {

// The case gives the contexts directly; nothing may ask for an encode.
class NoPromptEncoder : public PromptEncoder {
 public:
  absl::StatusOr<PromptEncoding> Encode(const std::vector<std::string>&,
                                        const std::string& field) const override {
    return absl::FailedPreconditionError(
        "wan_sampler_reference_check: contexts come from the case, not " +
        field);
  }
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "wan_sampler_reference_check: %s\n", message.c_str());
  return 1;
}

int Run() {
  const std::string path = absl::GetFlag(FLAGS_case);
  const double tol = absl::GetFlag(FLAGS_tol);
  if (path.empty()) return Fail("--case is required");
  absl::StatusOr<nlohmann::json> cfg = testing::CaseConfig(path);
  if (!cfg.ok()) return Fail(cfg.status().ToString());
  absl::StatusOr<DiTConfig> dit = testing::DiTConfigFromCase(
      cfg->contains("dit") ? (*cfg)["dit"] : *cfg);
  if (!dit.ok()) return Fail(dit.status().ToString());
  absl::StatusOr<WeightMap> all = ReadSafetensors(path);
  if (!all.ok()) return Fail(all.status().ToString());

  const std::string solver = cfg->value("solver", std::string("unipc"));
  const int steps = (*cfg)["num_steps"].get<int>();
  const double shift = (*cfg)["shift"].get<double>();
  const float guidance = (*cfg)["guidance"].get<float>();

  WeightMap weights;
  for (const auto& [k, v] : *all) {
    if (k.rfind("input.", 0) != 0 && k.rfind("expected.", 0) != 0 &&
        k.rfind("debug.", 0) != 0) {
      weights.emplace(k, v);
    }
  }
  PipelineConfig config = WanPipelineConfig(*dit);
  config.name = "wan-sampler-case";
  auto pipeline = Pipeline::Assemble(config, weights, {},
                                     std::make_unique<NoPromptEncoder>(),
                                     MakePixelDecoder());
  if (!pipeline.ok()) return Fail(pipeline.status().ToString());

  DenoiseState state;
  state.latents = all->at("input.noise").to(at::kFloat);
  state.cond_context = all->at("input.cond_context").to(at::kFloat);
  state.uncond_context = all->at("input.uncond_context").to(at::kFloat);
  state.guidance = at::full({state.latents.size(0)}, guidance, at::kFloat);
  FlowSchedule schedule = WanFlowSchedule(steps, shift);
  state.sigmas = schedule.sigmas;
  state.timesteps = schedule.timesteps;
  if (solver == "unipc") {
    state.sampler = SamplerKind::kFlowUniPC;
  } else if (solver == "euler") {
    state.sampler = SamplerKind::kFlowEuler;
  } else {
    return Fail("case solver \"" + solver + "\" is not unipc or euler");
  }
  for (int i = 0; i < steps; ++i) {
    absl::Status s = (*pipeline)->Step(state);
    if (!s.ok()) return Fail(s.ToString());
  }

  bool ok = true;
  ok &= testing::ReportExact("timesteps",
                             at::tensor(std::vector<int64_t>(
                                 schedule.timesteps.begin(),
                                 schedule.timesteps.end())),
                             all->at("expected.timesteps"));
  const at::Tensor sigmas = at::tensor(schedule.sigmas, at::kDouble);
  const bool sigmas_equal =
      sigmas.equal(all->at("expected.sigmas").to(at::kDouble));
  std::printf("sigmas (%s): %s\n", solver.c_str(),
              sigmas_equal ? "equal" : "DIFFER");
  ok &= sigmas_equal;
  ok &= testing::ReportRelative("latents (" + solver + ")", state.latents,
                                all->at("expected.latents"), tol);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace dserve::models

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  return dserve::models::Run();
}
