// Loads one Wan2.1 checkpoint written in both layouts (tools/wan/
// make_wan_checkpoint.py --layout=both: the same weights as the original
// Wan release and as diffusers) and checks they give the same pipeline:
//
//   wan_layouts_check --wan_dir=DIR/wan --diffusers_dir=DIR/diffusers
//
// Both go through LoadWanCheckpoint (key maps, .pth reader, safetensors,
// configs) into Pipeline::Assemble with the real umT5 encoder, DiT and Wan
// VAE, then one generation (5 frames 48x32, 3 UniPC steps, CFG, seed 7) on
// each: the DiT configs must be equal and the videos identical bit for bit.
// The prompt is given as token ids (the tokenizer has its own tests).

#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "worker/models/checkpoint/wan_checkpoint.h"
#include "worker/models/latent_decoder.h"
#include "worker/models/pipeline.h"
#include "worker/models/testing/wan_case.h"
#include "worker/models/text/umt5_encoder.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

ABSL_FLAG(std::string, wan_dir, "", "Checkpoint in the Wan release layout.");
ABSL_FLAG(std::string, diffusers_dir, "",
          "The same checkpoint in the diffusers layout.");

namespace dserve::models {
namespace {

struct Result {
  DiTConfig dit;
  at::Tensor video;
  std::string error;
};

Result Generate(const std::string& dir) {
  Result r;
  auto ckpt = checkpoint::LoadWanCheckpoint(dir);
  if (!ckpt.ok()) return {{}, {}, ckpt.status().ToString()};
  r.dit = ckpt->dit_config;
  auto t5 = Umt5Encoder::Create(ckpt->t5);
  if (!t5.ok()) return {{}, {}, t5.status().ToString()};
  auto prompts = testing::MakeIdsPromptEncoder(
      *std::move(t5), {{"a", {17, 5, 230, 9, 1}}, {"b", {44, 1}}},
      r.dit.text_len);
  auto decoder = MakeWanVaeDecoder(ckpt->vae, at::kCPU, r.dit.out_channels);
  if (!decoder.ok()) return {{}, {}, decoder.status().ToString()};
  PipelineConfig config = WanPipelineConfig(r.dit);
  auto pipeline = Pipeline::Assemble(config, ckpt->dit, {}, std::move(prompts),
                                     *std::move(decoder));
  if (!pipeline.ok()) return {{}, {}, pipeline.status().ToString()};
  GenerationSpec spec;
  spec.width = 48;
  spec.height = 32;
  spec.num_frames = 5;
  spec.num_steps = 3;
  spec.flow_shift = 5.0f;
  spec.items = {{"a", "b", 7, 5.0f}};
  auto state = (*pipeline)->Prepare(spec);
  if (!state.ok()) return {{}, {}, state.status().ToString()};
  for (int i = 0; i < spec.num_steps; ++i) {
    absl::Status s = (*pipeline)->Step(*state);
    if (!s.ok()) return {{}, {}, s.ToString()};
  }
  r.video = (*pipeline)->Decode(*state);
  return r;
}

int Run() {
  const Result a = Generate(absl::GetFlag(FLAGS_wan_dir));
  const Result b = Generate(absl::GetFlag(FLAGS_diffusers_dir));
  if (!a.error.empty() || !b.error.empty()) {
    std::fprintf(stderr, "wan_layouts_check: wan: %s; diffusers: %s\n",
                 a.error.c_str(), b.error.c_str());
    return 1;
  }
  const bool same_config =
      a.dit.dim == b.dit.dim && a.dit.ffn_dim == b.dit.ffn_dim &&
      a.dit.num_heads == b.dit.num_heads &&
      a.dit.num_layers == b.dit.num_layers && a.dit.patch == b.dit.patch &&
      a.dit.text_dim == b.dit.text_dim && a.dit.text_len == b.dit.text_len &&
      a.dit.in_channels == b.dit.in_channels &&
      a.dit.out_channels == b.dit.out_channels;
  std::printf("DiT config: %s (dim %d, %d layers, text_len %d)\n",
              same_config ? "equal" : "DIFFER", a.dit.dim, a.dit.num_layers,
              a.dit.text_len);
  const bool same_video =
      a.video.sizes() == b.video.sizes() && a.video.equal(b.video);
  std::printf("video [1, %lld, %lld, %lld, 3]: %s (max|d| = %g)\n",
              static_cast<long long>(a.video.size(1)),
              static_cast<long long>(a.video.size(2)),
              static_cast<long long>(a.video.size(3)),
              same_video ? "identical" : "DIFFER",
              a.video.sizes() == b.video.sizes()
                  ? (a.video - b.video).abs().max().item<double>()
                  : -1.0);
  // A constant video would make "identical" meaningless.
  const double spread = (a.video.max() - a.video.min()).item<double>();
  std::printf("video value spread: %g\n", spread);
  return same_config && same_video && spread > 0.01 ? 0 : 1;
}

}  // namespace
}  // namespace dserve::models

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(1);
  return dserve::models::Run();
}
