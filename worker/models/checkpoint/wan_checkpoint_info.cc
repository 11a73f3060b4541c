// Loads a Wan2.1 checkpoint directory (either layout) with LoadWanCheckpoint
// and prints what it found: layout, DiT config, tensor counts/bytes/dtypes
// per component, the scheduler config, and the load time. --touch then reads
// every byte (what a first forward pass would page in) and times that too.
//
//   bazel run //worker/models/checkpoint:wan_checkpoint_info -- --dir=DIR
//
// Exit status 1 (with the loader's message) if the checkpoint is rejected.

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "worker/models/checkpoint/wan_checkpoint.h"
#include <ATen/ATen.h>

ABSL_FLAG(std::string, dir, "", "checkpoint directory (diffusers or Wan layout)");
ABSL_FLAG(bool, touch, false, "also read every tensor byte and time it");
ABSL_FLAG(bool, text_encoder, true, "load the umT5 encoder");
ABSL_FLAG(bool, vae, true, "load the VAE");

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since)
      .count();
}

void Summary(const char* name, const dserve::models::WeightMap& w,
             const std::string& file) {
  std::map<std::string, int> dtypes;
  int64_t params = 0, bytes = 0;
  for (const auto& [key, t] : w) {
    ++dtypes[c10::toString(t.scalar_type())];
    params += t.numel();
    bytes += t.numel() * t.element_size();
  }
  std::string dt;
  for (const auto& [d, n] : dtypes) dt += " " + d + "x" + std::to_string(n);
  std::printf("%-4s %4zu tensors %13lld params %8.1f MiB [%s ] from %s\n", name,
              w.size(), static_cast<long long>(params), bytes / 1048576.0,
              dt.c_str(), file.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Loads a Wan2.1 checkpoint and describes it.");
  absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) {
    std::fprintf(stderr, "--dir is required\n");
    return 2;
  }
  dserve::models::checkpoint::WanLoadOptions options;
  options.load_text_encoder = absl::GetFlag(FLAGS_text_encoder);
  options.load_vae = absl::GetFlag(FLAGS_vae);
  const auto start = std::chrono::steady_clock::now();
  auto ckpt = dserve::models::checkpoint::LoadWanCheckpoint(dir, options);
  const double load_s = Seconds(start);
  if (!ckpt.ok()) {
    std::fprintf(stderr, "%s\n", ckpt.status().ToString().c_str());
    return 1;
  }
  const dserve::models::DiTConfig& c = ckpt->dit_config;
  std::printf("layout %s, loaded in %.3f s\n", ckpt->layout.c_str(), load_s);
  std::printf(
      "DiT dim %d ffn %d heads %d layers %d freq %d text_dim %d text_len %d "
      "in %d out %d patch %d,%d,%d eps %g\n",
      c.dim, c.ffn_dim, c.num_heads, c.num_layers, c.freq_dim, c.text_dim,
      c.text_len, c.in_channels, c.out_channels, c.patch[0], c.patch[1],
      c.patch[2], c.eps);
  Summary("dit", ckpt->dit, ckpt->dit_file);
  Summary("t5", ckpt->t5, ckpt->t5_file);
  Summary("vae", ckpt->vae, ckpt->vae_file);
  std::printf("spiece %s\n", ckpt->spiece_model_path.c_str());
  if (ckpt->scheduler.flow_shift) {
    std::printf("scheduler %s flow_shift %g\n",
                ckpt->scheduler.class_name.c_str(), *ckpt->scheduler.flow_shift);
  }
  if (absl::GetFlag(FLAGS_touch)) {
    const auto t0 = std::chrono::steady_clock::now();
    double sum = 0;
    for (const auto* m : {&ckpt->dit, &ckpt->t5, &ckpt->vae}) {
      for (const auto& [key, t] : *m) {
        sum += t.to(at::kFloat).abs().sum().item<double>();
      }
    }
    std::printf("touched every byte in %.3f s (sum |w| = %.6g)\n", Seconds(t0),
                sum);
  }
  return 0;
}
