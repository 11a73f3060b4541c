// Times the Wan VAE decode (and optionally encode) on random weights and
// reports peak resident memory, e.g.
//
//   bazel run -c opt //worker/models/vae:vae_decode_bench -- --config=tiny
//   bazel run -c opt //worker/models/vae:vae_decode_bench -- --config=real \
//       --latent_frames=1 --latent_height=60 --latent_width=104 --repeats=1
//
// --config=tiny is the reference test's VAE (base 8); real is the released
// Wan2.1 VAE's shapes (base 96, 126.9 M params). Not a test: timings vary.

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/blas_kernels.h"
#include "worker/models/vae/testing/random_vae_weights.h"
#include "worker/models/vae/wan_vae.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

ABSL_FLAG(std::string, config, "tiny", "tiny (base 8) or real (base 96).");
ABSL_FLAG(int, latent_frames, 4, "Latent frames T (video 1 + 4(T-1)).");
ABSL_FLAG(int, latent_height, 4, "Latent height (video x8).");
ABSL_FLAG(int, latent_width, 6, "Latent width (video x8).");
ABSL_FLAG(std::string, mode, "chunked", "chunked or oneshot decode.");
ABSL_FLAG(bool, encode, false, "Also time Encode of the decoded video.");
ABSL_FLAG(int, repeats, 3, "Timed decodes (median reported).");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");

namespace dserve::models {
namespace {

double PeakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       since)
      .count();
}

int Run() {
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  WanVaeConfig config;  // released shapes
  const std::string name = absl::GetFlag(FLAGS_config);
  if (name == "tiny") {
    config = TinyWanVaeConfig();
  } else if (name != "real") {
    std::fprintf(stderr, "--config = %s; allowed: tiny, real\n", name.c_str());
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<WanVae> vae = [&] {
    WeightMap weights = RandomWanVaeWeights(config, 1);
    return WanVae::Create(weights);
  }();
  if (!vae.ok()) {
    std::fprintf(stderr, "%s\n", std::string(vae.status().message()).c_str());
    return 1;
  }
  std::printf("config %s: random weights + Create %.2f s, peak RSS %.0f MiB\n",
              name.c_str(), Seconds(start), PeakRssMiB());
  at::manual_seed(2);
  at::Tensor z = at::randn({1, 16, absl::GetFlag(FLAGS_latent_frames),
                            absl::GetFlag(FLAGS_latent_height),
                            absl::GetFlag(FLAGS_latent_width)});
  const bool chunked = absl::GetFlag(FLAGS_mode) == "chunked";
  std::vector<double> times;
  at::Tensor video;
  for (int i = 0; i < std::max(1, absl::GetFlag(FLAGS_repeats)); ++i) {
    start = std::chrono::steady_clock::now();
    absl::StatusOr<at::Tensor> out =
        chunked ? vae->Decode(z) : vae->DecodeOneShot(z);
    times.push_back(Seconds(start));
    if (!out.ok()) {
      std::fprintf(stderr, "%s\n", std::string(out.status().message()).c_str());
      return 1;
    }
    video = *out;
  }
  std::sort(times.begin(), times.end());
  std::printf("decode (%s, %d thread(s)) latents [1, 16, %ld, %ld, %ld] -> "
              "video [%ld, %ld, %ld, %ld, %ld]: median %.3f s over %zu, "
              "peak RSS %.0f MiB\n",
              chunked ? "chunked" : "one-shot", at::get_num_threads(),
              z.size(2), z.size(3), z.size(4), video.size(0), video.size(1),
              video.size(2), video.size(3), video.size(4),
              times[times.size() / 2], times.size(), PeakRssMiB());
  if (absl::GetFlag(FLAGS_encode)) {
    start = std::chrono::steady_clock::now();
    absl::StatusOr<at::Tensor> latents = vae->Encode(video);
    if (!latents.ok()) {
      std::fprintf(stderr, "%s\n",
                   std::string(latents.status().message()).c_str());
      return 1;
    }
    std::printf("encode: %.3f s, peak RSS %.0f MiB\n", Seconds(start),
                PeakRssMiB());
  }
  return 0;
}

}  // namespace
}  // namespace dserve::models

int main(int argc, char** argv) {
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  absl::ParseCommandLine(argc, argv);
  return dserve::models::Run();
}
