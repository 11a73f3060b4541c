// Real-size check of the Wan2.1 pipeline on CPU: loads a checkpoint
// directory (either layout, e.g. the 1.3B config written with random
// weights by tools/wan/make_wan_checkpoint.py --preset=1.3b), builds the
// pipeline (umT5, DiT, VAE) and runs ONE denoising step (CFG: a batch of 2
// through the DiT) at a small size, optionally followed by the VAE decode
// of the result. Prints the time of each phase; run it under
// /usr/bin/time -v for the peak RSS.
//
//   wan_real_size_check --dir=DIR [--frames=5 --height=64 --width=64]
//       [--decode] [--threads=2]
//
// The prompt is given as token ids (the tokenizer has its own tests), so
// the check does not need a real spiece.model. Not a test: nothing is
// compared; it exits 1 on any error.

#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "worker/models/checkpoint/wan_checkpoint.h"
#include "worker/models/latent_decoder.h"
#include "worker/models/pipeline.h"
#include "worker/models/testing/wan_case.h"
#include "worker/models/text/umt5_encoder.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

ABSL_FLAG(std::string, dir, "", "Wan2.1 checkpoint directory.");
ABSL_FLAG(int, frames, 5, "Video frames (4k+1).");
ABSL_FLAG(int, height, 64, "Height in pixels (multiple of 16).");
ABSL_FLAG(int, width, 64, "Width in pixels (multiple of 16).");
ABSL_FLAG(bool, decode, false, "Also decode the latents with the VAE.");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads.");

namespace dserve::models {
namespace {

double Since(absl::Time t) { return absl::ToDoubleSeconds(absl::Now() - t); }

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "wan_real_size_check: %s\n", s.ToString().c_str());
  return 1;
}

int Run() {
  absl::Time t = absl::Now();
  auto ckpt = checkpoint::LoadWanCheckpoint(absl::GetFlag(FLAGS_dir));
  if (!ckpt.ok()) return Fail(ckpt.status());
  int64_t dit_params = 0;
  for (const auto& [k, v] : ckpt->dit) dit_params += v.numel();
  std::printf("load (%s layout, mmap + checks): %.2f s; DiT dim %d, %d "
              "layers, %.3f B params\n",
              ckpt->layout.c_str(), Since(t), ckpt->dit_config.dim,
              ckpt->dit_config.num_layers, dit_params / 1e9);

  t = absl::Now();
  auto t5 = Umt5Encoder::Create(ckpt->t5);
  if (!t5.ok()) return Fail(t5.status());
  auto prompts = testing::MakeIdsPromptEncoder(
      *std::move(t5), {{"p", {17, 5, 230, 9, 1}}, {"n", {44, 1}}},
      ckpt->dit_config.text_len);
  auto decoder = MakeWanVaeDecoder(ckpt->vae, at::kCPU,
                                   ckpt->dit_config.out_channels);
  if (!decoder.ok()) return Fail(decoder.status());
  auto pipeline = Pipeline::Assemble(WanPipelineConfig(ckpt->dit_config),
                                     ckpt->dit, {}, std::move(prompts),
                                     *std::move(decoder));
  if (!pipeline.ok()) return Fail(pipeline.status());
  std::printf("build pipeline (umT5 + DiT to fp32 + VAE): %.2f s\n", Since(t));

  GenerationSpec spec;
  spec.width = absl::GetFlag(FLAGS_width);
  spec.height = absl::GetFlag(FLAGS_height);
  spec.num_frames = absl::GetFlag(FLAGS_frames);
  spec.num_steps = 50;
  spec.flow_shift = 5.0f;
  spec.items = {{"p", "n", 1, 5.0f}};
  t = absl::Now();
  auto state = (*pipeline)->Prepare(spec);
  if (!state.ok()) return Fail(state.status());
  std::printf("prepare (umT5 encode x2 + noise): %.2f s; latents [%s]\n",
              Since(t),
              c10::str(state->latents.sizes()).c_str());
  t = absl::Now();
  if (absl::Status s = (*pipeline)->Step(*state); !s.ok()) return Fail(s);
  std::printf("one DiT step (CFG, batch 2, UniPC): %.2f s\n", Since(t));
  if (absl::GetFlag(FLAGS_decode)) {
    t = absl::Now();
    at::Tensor video = (*pipeline)->Decode(*state);
    std::printf("VAE decode: %.2f s; video [%s]\n", Since(t),
                c10::str(video.sizes()).c_str());
  }
  return 0;
}

}  // namespace
}  // namespace dserve::models

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  return dserve::models::Run();
}
