// Step cache benchmark (issue 15 item 3): over a fixed prompt set on the
// default model, per preset (common/step_cache_presets.h): steps reused,
// DiT computes vs uncached, wall-time ratio vs the uncached run in the same
// process, PSNR and SSIM (7x7 uniform windows, per channel) vs the uncached
// image, mean and min. One item per generation, the model's default
// guidance, seed = prompt index.
//
//   bazel run -c opt //bench:step_cache_bench -- --prompts=24 --steps=20
//
// Prints one table row per preset. Blocks until done; single-threaded
// driver (torch intra-op threads as configured).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/step_cache_presets.h"
#include "worker/models/default_model/weights_path.h"
#include "worker/models/pipeline.h"
#include <ATen/ATen.h>

ABSL_FLAG(std::string, model_dir, "", "Model directory; empty = default.");
ABSL_FLAG(int, prompts, 24, "Prompts in the fixed set.");
ABSL_FLAG(int, steps, 20, "Denoising steps.");
ABSL_FLAG(int, size, 32, "Width and height.");
ABSL_FLAG(std::vector<std::string>, configs, {},
          "Extra rows to try, each threshold:warmup:max (for tuning).");

namespace dserve::bench {
namespace {

std::vector<std::string> PromptSet(int n) {
  const char* colours[] = {"red", "green", "blue", "yellow", "purple",
                           "orange"};
  const char* shapes[] = {"circle", "square", "triangle"};
  const char* places[] = {"at the top", "at the bottom", "on the left",
                          "on the right", "in the middle"};
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(std::string("a ") + colours[i % 6] + " " +
                  shapes[(i / 6) % 3] + " " + places[(i / 2) % 5]);
  }
  return out;
}

double Psnr(const at::Tensor& a, const at::Tensor& b) {
  const double mse = (a - b).pow(2).mean().item<double>();
  return mse <= 1e-20 ? 200.0 : 10 * std::log10(1.0 / mse);
}

// a, b: [H, W, 3] in [0, 1].
double Ssim(const at::Tensor& a, const at::Tensor& b) {
  auto chw = [](const at::Tensor& t) {
    return t.permute({2, 0, 1}).unsqueeze(0).to(at::kDouble);
  };
  const at::Tensor x = chw(a), y = chw(b);
  auto pool = [](const at::Tensor& t) {
    return at::avg_pool2d(t, {7, 7}, {1, 1}, {3, 3}, false, false);
  };
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  const at::Tensor mx = pool(x), my = pool(y);
  const at::Tensor vx = pool(x * x) - mx * mx;
  const at::Tensor vy = pool(y * y) - my * my;
  const at::Tensor cxy = pool(x * y) - mx * my;
  const at::Tensor s = ((2 * mx * my + c1) * (2 * cxy + c2)) /
                       ((mx * mx + my * my + c1) * (vx + vy + c2));
  return s.mean().item<double>();
}

struct Run {
  std::vector<at::Tensor> images;
  int computed = 0;
  int reused = 0;
  double seconds = 0;
};

Run Generate(const models::Pipeline& p, const std::vector<std::string>& set,
             const models::StepCacheConfig& cache, int steps, int size) {
  Run run;
  const absl::Time start = absl::Now();
  for (size_t i = 0; i < set.size(); ++i) {
    models::GenerationSpec spec;
    spec.width = size;
    spec.height = size;
    spec.num_steps = steps;
    spec.flow_shift = p.config().default_shift;
    spec.step_cache = cache;
    spec.items = {{set[i], "", static_cast<uint64_t>(i),
                   p.config().default_guidance}};
    absl::StatusOr<models::DenoiseState> s = p.Prepare(spec);
    if (!s.ok()) {
      std::fprintf(stderr, "prepare: %s\n", s.status().ToString().c_str());
      std::exit(3);
    }
    for (int k = 0; k < steps; ++k) {
      if (absl::Status st = p.Step(*s); !st.ok()) {
        std::fprintf(stderr, "step: %s\n", st.ToString().c_str());
        std::exit(3);
      }
    }
    run.computed += cache.enabled ? s->step_cache.steps_computed : steps;
    run.reused += s->step_cache.steps_reused;
    run.images.push_back(p.Decode(*s)[0][0]);
  }
  run.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return run;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string dir = absl::GetFlag(FLAGS_model_dir);
  if (dir.empty()) {
    absl::StatusOr<std::string> d =
        default_model::DefaultModelDirectory(argv[0]);
    if (!d.ok()) {
      std::fprintf(stderr, "%s\n", d.status().ToString().c_str());
      return 3;
    }
    dir = *d;
  }
  absl::StatusOr<std::unique_ptr<models::Pipeline>> p =
      models::Pipeline::LoadFromDirectory(dir);
  if (!p.ok()) {
    std::fprintf(stderr, "%s\n", p.status().ToString().c_str());
    return 3;
  }
  const int steps = absl::GetFlag(FLAGS_steps);
  const int size = absl::GetFlag(FLAGS_size);
  const std::vector<std::string> set = PromptSet(absl::GetFlag(FLAGS_prompts));
  const Run base = Generate(**p, set, {}, steps, size);
  std::printf(
      "%zu prompts, %dx%d, %d steps; uncached %.2f s\n"
      "| preset | threshold/warmup/max | steps reused | fewer DiT computes "
      "| wall-time ratio | PSNR mean/min dB | SSIM mean/min |\n"
      "| --- | --- | --- | --- | --- | --- | --- |\n",
      set.size(), size, size, steps, base.seconds);
  std::vector<std::pair<std::string, common::StepCacheSettings>> rows;
  for (const char* name : {"slow", "medium", "fast"}) {
    rows.emplace_back(name, *common::StepCachePreset(name, ""));
  }
  for (const std::string& spec : absl::GetFlag(FLAGS_configs)) {
    std::vector<std::string> f = absl::StrSplit(spec, ':');
    common::StepCacheSettings s;
    if (f.size() != 3 || !absl::SimpleAtof(f[0], &s.threshold) ||
        !absl::SimpleAtoi(f[1], &s.warmup_steps) ||
        !absl::SimpleAtoi(f[2], &s.max_reused_in_a_row)) {
      std::fprintf(stderr, "--configs: bad entry %s\n", spec.c_str());
      return 1;
    }
    rows.emplace_back("(try)", s);
  }
  for (const auto& [name_str, s] : rows) {
    const char* name = name_str.c_str();
    models::StepCacheConfig c;
    c.enabled = true;
    c.threshold = s.threshold;
    c.warmup_steps = s.warmup_steps;
    c.max_reused_in_a_row = s.max_reused_in_a_row;
    const Run run = Generate(**p, set, c, steps, size);
    double psnr_sum = 0, psnr_min = 1e9, ssim_sum = 0, ssim_min = 1e9;
    for (size_t i = 0; i < set.size(); ++i) {
      const double ps = Psnr(base.images[i], run.images[i]);
      const double ss = Ssim(base.images[i], run.images[i]);
      psnr_sum += ps;
      psnr_min = std::min(psnr_min, ps);
      ssim_sum += ss;
      ssim_min = std::min(ssim_min, ss);
    }
    const double n = static_cast<double>(set.size());
    std::printf(
        "| %s | %.3g/%d/%d | %d of %d (%.1f%%) | %.2fx | %.2fx | %.1f / %.1f "
        "| %.3f / %.3f |\n",
        name, s.threshold, s.warmup_steps, s.max_reused_in_a_row, run.reused,
        run.reused + run.computed,
        100.0 * run.reused / std::max(1, run.reused + run.computed),
        static_cast<double>(base.computed) / std::max(1, run.computed),
        base.seconds / run.seconds, psnr_sum / n, psnr_min, ssim_sum / n,
        ssim_min);
  }
  return 0;
}

}  // namespace
}  // namespace dserve::bench

int main(int argc, char** argv) { return dserve::bench::Main(argc, argv); }
