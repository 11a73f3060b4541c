// Times one generation of the default random model end to end in-process
// (Prepare → Step × N → Decode), the number the README and the issue quote.
//
//   pipeline_benchmark [--threads=2] [--width=64] [--height=64] [--steps=20]
//                      [--guidance=4] [--frames=1] [--repeats=5]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/blas_kernels.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"
#include <ATen/Parallel.h>

ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads.");
ABSL_FLAG(int, width, 64, "Image width in pixels.");
ABSL_FLAG(int, height, 64, "Image height in pixels.");
ABSL_FLAG(int, frames, 1, "Frames.");
ABSL_FLAG(int, steps, 20, "Denoising steps.");
ABSL_FLAG(double, guidance, 4.0, "Guidance scale (1 = no CFG).");
ABSL_FLAG(int, repeats, 5, "Timed repetitions (after one warm-up).");

int main(int argc, char** argv) {
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  using dserve::models::Pipeline;
  dserve::models::PipelineConfig config = dserve::models::DefaultModelConfig();
  dserve::models::WeightMap weights = dserve::models::RandomWeights(config, 0);
  absl::StatusOr<std::unique_ptr<Pipeline>> pipeline =
      Pipeline::Create(config, std::move(weights));
  if (!pipeline.ok()) {
    std::fprintf(stderr, "%s\n", pipeline.status().ToString().c_str());
    return 1;
  }
  dserve::models::GenerationSpec spec;
  spec.width = absl::GetFlag(FLAGS_width);
  spec.height = absl::GetFlag(FLAGS_height);
  spec.num_frames = absl::GetFlag(FLAGS_frames);
  spec.num_steps = absl::GetFlag(FLAGS_steps);
  spec.flow_shift = config.default_shift;
  spec.items.push_back({"a red circle on a blue background", "", 1,
                        static_cast<float>(absl::GetFlag(FLAGS_guidance))});
  std::vector<double> seconds;
  for (int r = 0; r <= absl::GetFlag(FLAGS_repeats); ++r) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<dserve::models::DenoiseState> state =
        (*pipeline)->Prepare(spec);
    if (!state.ok()) {
      std::fprintf(stderr, "%s\n", state.status().ToString().c_str());
      return 1;
    }
    for (int i = 0; i < spec.num_steps; ++i) {
      absl::Status st = (*pipeline)->Step(*state);
      if (!st.ok()) {
        std::fprintf(stderr, "%s\n", st.ToString().c_str());
        return 1;
      }
    }
    at::Tensor pixels = (*pipeline)->Decode(*state);
    const double s = std::chrono::duration<double>(
                         std::chrono::steady_clock::now() - start)
                         .count();
    if (r > 0) seconds.push_back(s);  // r == 0 is the warm-up
  }
  std::sort(seconds.begin(), seconds.end());
  std::printf(
      "%dx%d, %d frame(s), %d steps, guidance %.1f, %d thread(s): median "
      "%.3f s, min %.3f s, max %.3f s over %zu runs\n",
      spec.width, spec.height, spec.num_frames, spec.num_steps,
      absl::GetFlag(FLAGS_guidance), absl::GetFlag(FLAGS_threads),
      seconds[seconds.size() / 2], seconds.front(), seconds.back(),
      seconds.size());
  return 0;
}
