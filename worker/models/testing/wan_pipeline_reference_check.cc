// Checks the whole Wan2.1 pipeline (umT5 -> DiT + CFG + UniPC -> Wan VAE,
// noise drawn from the seed by Pipeline::Prepare) against the `pipeline`
// reference case of tools/reference/wan_reference.py:
//
//   wan_pipeline_reference_check --case=pipeline.safetensors --tol=1e-4
//
// The case holds the umT5, DiT and VAE random weights under t5. / dit. /
// vae. (Wan names), input.cond_ids / input.uncond_ids (token ids: the
// tokenizer is tested on its own against SentencePiece's Python binding),
// expected.timesteps and expected.video [F, H, W, 3] = (clamp(x, -1, 1) +
// 1) / 2 for the metadata's seed, frames, size, steps, shift and guidance.
// The checker assembles a Pipeline from those parts (the real Umt5Encoder,
// WanVae and DiT), runs Prepare / Step x N / Decode as the rank loop does
// and exits 1 if the timesteps differ or the video is off by more than
// --tol relative. It also checks Preview(item 0) equals the first decoded
// frame of the final x0 estimate's decode path.

#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "worker/models/latent_decoder.h"
#include "worker/models/pipeline.h"
#include "worker/models/safetensors.h"
#include "worker/models/testing/wan_case.h"
#include "worker/models/text/umt5_encoder.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

ABSL_FLAG(std::string, case, "", "Reference case file (safetensors).");
ABSL_FLAG(double, tol, 1e-4, "Largest allowed max|d|/max|ref|.");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");

namespace dserve::models {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "wan_pipeline_reference_check: %s\n", message.c_str());
  return 1;
}

int Run() {
  const std::string path = absl::GetFlag(FLAGS_case);
  const double tol = absl::GetFlag(FLAGS_tol);
  if (path.empty()) return Fail("--case is required");
  absl::StatusOr<nlohmann::json> cfg = testing::CaseConfig(path);
  if (!cfg.ok()) return Fail(cfg.status().ToString());
  absl::StatusOr<DiTConfig> dit = testing::DiTConfigFromCase((*cfg)["dit"]);
  if (!dit.ok()) return Fail(dit.status().ToString());
  absl::StatusOr<WeightMap> all = ReadSafetensors(path);
  if (!all.ok()) return Fail(all.status().ToString());

  auto t5 = Umt5Encoder::Create(testing::WithPrefix(*all, "t5."));
  if (!t5.ok()) return Fail(t5.status().ToString());
  auto prompts = testing::MakeIdsPromptEncoder(
      *std::move(t5),
      {{"cond", testing::Ids(all->at("input.cond_ids"))},
       {"uncond", testing::Ids(all->at("input.uncond_ids"))}},
      dit->text_len);
  auto decoder = MakeWanVaeDecoder(testing::WithPrefix(*all, "vae."),
                                   at::kCPU, dit->out_channels);
  if (!decoder.ok()) return Fail(decoder.status().ToString());
  PipelineConfig config = WanPipelineConfig(*dit);
  config.name = "wan-pipeline-case";
  auto pipeline = Pipeline::Assemble(config, testing::WithPrefix(*all, "dit."),
                                     {}, std::move(prompts),
                                     *std::move(decoder));
  if (!pipeline.ok()) return Fail(pipeline.status().ToString());

  GenerationSpec spec;
  spec.width = (*cfg)["width"].get<int>();
  spec.height = (*cfg)["height"].get<int>();
  spec.num_frames = (*cfg)["frames"].get<int>();
  spec.num_steps = (*cfg)["num_steps"].get<int>();
  spec.flow_shift = (*cfg)["shift"].get<float>();
  spec.sampler = SamplerKind::kModelDefault;  // UniPC for Wan
  spec.items = {{"cond", "uncond", (*cfg)["seed"].get<uint64_t>(),
                 (*cfg)["guidance"].get<float>()}};
  absl::StatusOr<DenoiseState> state = (*pipeline)->Prepare(spec);
  if (!state.ok()) return Fail(state.status().ToString());
  for (int i = 0; i < spec.num_steps; ++i) {
    absl::Status s = (*pipeline)->Step(*state);
    if (!s.ok()) return Fail(s.ToString());
  }
  const at::Tensor video = (*pipeline)->Decode(*state);
  const at::Tensor preview = (*pipeline)->Preview(*state, 0);

  bool ok = true;
  ok &= testing::ReportExact(
      "timesteps",
      at::tensor(std::vector<int64_t>(state->timesteps.begin(),
                                      state->timesteps.end())),
      all->at("expected.timesteps"));
  ok &= testing::ReportRelative("video", video.select(0, 0),
                                all->at("expected.video"), tol);
  // The preview decodes only latent frame 0 of the x0 estimate, which after
  // the last (sigma -> 0) UniPC step is the final sample itself.
  ok &= testing::ReportRelative("preview (frame 0)", preview,
                                video.select(0, 0).select(0, 0), 1e-6);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace dserve::models

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  return dserve::models::Run();
}
