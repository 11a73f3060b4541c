// Step cache benchmark (issue 15 item 3). Over the default model's own
// evaluation set (training/evaluator.h MakeEvalCases: --n canonical shapes
// prompts from --seed, the set and noise seeds eval_default_model uses for
// the published accuracy), per step-cache preset (common/step_cache_presets)
// and uncached:
//   - steps reused and fewer DiT computes, counted in whole steps (the
//     issue's measure) and in transformer blocks (a reused step still runs
//     block 0);
//   - wall-time ratio vs uncached, measured so that a shared machine does
//     not bias it: for every prompt and preset the uncached and the cached
//     generation of that prompt run back to back, the order alternating
//     between prompts; reported as the median of the per-prompt ratios and
//     as the ratio of the totals;
//   - quality vs the uncached image: PSNR and SSIM (7x7 uniform windows,
//     per channel), mean / min, and images below 30 dB;
//   - the in-tree analyser's accuracy (training/analyser.h) against what
//     each prompt asked for: background, shape colour, position, shape and
//     all four, plus how many prompts lost / gained all-four vs uncached.
// One item per generation (a request's own batch; the cache decides once
// per model batch), the model's default guidance, shift and size.
// --configs adds first-block rows with other settings (tuning), --only
// runs chosen prompts of the set (e.g. the images a run listed below 30 dB
// on stderr, with how many of their pixels changed);
// --teacache adds rows with a TeaCache-style signal (GenerateTeaCache).
//
//   bazel build //bench:step_cache_bench
//   bazel-bin/bench/step_cache_bench  # n=400 seed=2024: 2400 generations
//
// Prints a markdown table. Blocks until done; single driver thread, torch
// intra-op threads = --threads.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/blas_kernels.h"
#include "common/step_cache_presets.h"
#include "training/analyser.h"
#include "training/evaluator.h"
#include "worker/models/default_model/weights_path.h"
#include "worker/models/dit.h"
#include "worker/models/pipeline.h"
#include "worker/models/pixels.h"
#include "worker/models/safetensors.h"
#include "worker/models/sampler.h"
#include "worker/models/step_cache.h"

ABSL_FLAG(std::string, model_dir, "", "Model directory; empty = default.");
ABSL_FLAG(int, n, 400, "Prompts (training::MakeEvalCases).");
ABSL_FLAG(uint64_t, seed, 2024, "Seed of the prompts and their noise.");
ABSL_FLAG(int, steps, 0, "Denoising steps; 0 = the model's default.");
ABSL_FLAG(int, size, 0, "Width and height; 0 = the model's default.");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");
ABSL_FLAG(std::vector<std::string>, presets,
          std::vector<std::string>({"slow", "medium", "fast"}),
          "Presets to measure (common/step_cache_presets).");
ABSL_FLAG(bool, timing, true,
          "Pair every cached generation with an uncached one of the same "
          "prompt for the wall-time ratio; false = one uncached run per "
          "prompt and no time columns (quality/accuracy only, for tuning).");
ABSL_FLAG(std::vector<std::string>, configs, {},
          "Extra rows to try, each threshold:warmup:max[:extrapolation"
          "[:final]] (for tuning): extrapolation = weight of the reused "
          "residual's first-order term (0 = plain reuse; default "
          "StepCacheConfig's), final = steps at the end always computed "
          "(default 1).");
ABSL_FLAG(std::vector<std::string>, only, {},
          "Indices (0-based) of the --n prompts to run, e.g. the ones a "
          "previous run listed below 30 dB; empty = all (for tuning).");
ABSL_FLAG(std::vector<std::string>, teacache, {},
          "Rows with the TeaCache-style modulated-input signal (computed "
          "in this bench), each threshold:warmup:max.");

namespace dserve::bench {
namespace {

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

// CPU seconds of the whole process (every thread), which another
// process's load on the same cores barely changes, unlike wall time.
double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

struct Options {
  int size = 32;
  int steps = 20;
  float guidance = 4;
  float shift = 1;
};

// One generation of one prompt.
struct Sample {
  at::Tensor image;  // [H, W, 3] float in [0, 1]
  training::AttributeMatch match;
  int computed = 0;
  int reused = 0;
  double seconds = 0;       // Prepare + steps + Decode
  double step_seconds = 0;  // the denoising steps alone
  double cpu_seconds = 0;   // process CPU time of the generation
};

// The analyser's reading of out.image against what `c` asked for.
void Score(const training::EvalCase& c, const Options& o, Sample& out) {
  absl::StatusOr<std::vector<uint8_t>> rgb = models::ToRgb8(out.image);
  if (!rgb.ok()) {
    std::fprintf(stderr, "rgb: %s\n", rgb.status().ToString().c_str());
    std::exit(3);
  }
  training::RgbImage img;
  img.width = img.height = o.size;
  img.rgb = *std::move(rgb);
  out.match = training::Compare(c.scene, training::Analyse(img));
}

// Case `c` prepared at the bench's size and schedule, with the pipeline's
// own step cache set to `cache` (off for the TeaCache loop below, which
// caches by itself). Exits on error.
models::DenoiseState PrepareOrExit(const models::Pipeline& p,
                                   const training::EvalCase& c,
                                   const models::StepCacheConfig& cache,
                                   const Options& o) {
  models::GenerationSpec spec;
  spec.width = spec.height = o.size;
  spec.num_frames = 1;
  spec.num_steps = o.steps;
  spec.flow_shift = o.shift;
  spec.step_cache = cache;
  spec.items = {{c.prompt, "", c.seed, o.guidance}};
  absl::StatusOr<models::DenoiseState> s = p.Prepare(spec);
  if (!s.ok()) {
    std::fprintf(stderr, "prepare: %s\n", s.status().ToString().c_str());
    std::exit(3);
  }
  return *std::move(s);
}

Sample Generate(const models::Pipeline& p, const training::EvalCase& c,
                const models::StepCacheConfig& cache, const Options& o) {
  const absl::Time start = absl::Now();
  const double cpu_start = ProcessCpuSeconds();
  models::DenoiseState state = PrepareOrExit(p, c, cache, o);
  const absl::Time steps_start = absl::Now();
  for (int k = 0; k < o.steps; ++k) {
    if (absl::Status st = p.Step(state); !st.ok()) {
      std::fprintf(stderr, "step: %s\n", st.ToString().c_str());
      std::exit(3);
    }
  }
  Sample out;
  out.step_seconds = absl::ToDoubleSeconds(absl::Now() - steps_start);
  out.image = p.Decode(state)[0][0];
  out.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  out.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  out.computed = cache.enabled ? state.step_cache.steps_computed : o.steps;
  out.reused = state.step_cache.steps_reused;
  Score(c, o, out);
  return out;
}

// TeaCache-style signal (issue 15: "measure and pick"), computed here from
// the DiT's public pieces without touching worker/models/step_cache: the
// modulated input of block 0, LayerNorm(x)·(1 + scale_msa) + shift_msa
// with (shift, scale) = (blocks.0.modulation + e0)[0, 1], is known before
// any block runs, so a reused step skips every block (the shipped
// first-block signal runs block 0 to decide). Its relative L1 change is
// accumulated and fed to the same policy (models::ShouldReuseStep); a
// reused step adds the residual of all blocks from the last computed step.
// No fitted rescaling polynomial (TeaCache fits one per model). The Euler
// loop below is Pipeline::Step's for a 1-rank flow-Euler model; the bench
// checks it reproduces the uncached image bit for bit at threshold 0.
Sample GenerateTeaCache(const models::Pipeline& p, const at::Tensor& mod0,
                        const training::EvalCase& c,
                        const models::StepCacheConfig& cache,
                        const Options& o) {
  const absl::Time start = absl::Now();
  const double cpu_start = ProcessCpuSeconds();
  models::DenoiseState state =
      PrepareOrExit(p, c, models::StepCacheConfig(), o);
  const models::DiT& dit = p.dit();
  const int layers = dit.config().num_layers;
  const int64_t dim = dit.config().dim;
  const bool x0_model = p.config().prediction_type == "x0";
  at::Tensor prev_inp, residual;
  models::StepCacheState st;  // counters and the accumulated change
  const at::Tensor g = state.guidance.to(at::kFloat).contiguous();
  const std::vector<float> guidance(g.data_ptr<float>(),
                                    g.data_ptr<float>() + g.numel());
  const absl::Time steps_start = absl::Now();
  for (int k = 0; k < o.steps; ++k) {
    const double sigma = state.sigmas[k], sigma_next = state.sigmas[k + 1];
    const at::Tensor& x = state.latents;
    const at::Tensor t =
        at::full({x.size(0)}, state.timesteps[k], x.options());
    models::DenoiseFn model = [&](const at::Tensor& xin, const at::Tensor& ts,
                                  const at::Tensor& ctx) {
      const at::Tensor in = p.config().coordinate_planes
                                ? models::AppendCoordinatePlanes(xin)
                                : xin;
      models::DiTActivations a = dit.Embed(in, ts, ctx);
      const at::Tensor m = mod0 + a.e0;  // [B, 6, dim]
      const at::Tensor inp =
          at::layer_norm(a.x, {dim}, {}, {}, dit.config().eps) *
              (1 + m.select(1, 1).unsqueeze(1)) +
          m.select(1, 0).unsqueeze(1);
      models::StepCacheSnapshot snap;
      snap.step = k;
      snap.num_steps = o.steps;
      snap.have_cache = prev_inp.defined() && residual.defined();
      if (prev_inp.defined()) {
        st.accumulated +=
            models::RelativeL1(models::RelativeL1Parts(inp, prev_inp));
      }
      snap.accumulated = st.accumulated;
      snap.reused_in_a_row = st.reused_in_a_row;
      prev_inp = inp;
      if (models::ShouldReuseStep(cache, snap)) {
        a.x = a.x + residual;
        ++st.reused_in_a_row;
        ++st.steps_reused;
      } else {
        const at::Tensor x_in = a.x;
        dit.RunBlocks(a, 0, layers);
        residual = a.x - x_in;
        st.accumulated = 0;
        st.reused_in_a_row = 0;
        ++st.steps_computed;
      }
      return dit.Head(a);
    };
    const at::Tensor pred = models::GuidedPrediction(
        model, x, t, state.cond_context, state.uncond_context, guidance);
    const at::Tensor velocity =
        x0_model ? models::VelocityFromX0(x, pred, sigma) : pred;
    state.latents = models::EulerStep(x, velocity, sigma, sigma_next);
    ++state.step;
  }
  Sample out;
  out.step_seconds = absl::ToDoubleSeconds(absl::Now() - steps_start);
  out.image = p.Decode(state)[0][0];
  out.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  out.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  out.computed = st.steps_computed;
  out.reused = st.steps_reused;
  Score(c, o, out);
  return out;
}

struct Row {
  std::string name;
  common::StepCacheSettings settings;
  // Its extrapolation and final_computed_steps come from --configs (else
  // StepCacheConfig's defaults, as a request gets them).
  models::StepCacheConfig config;
  std::vector<Sample> samples;   // per prompt
  std::vector<Sample> uncached;  // its paired uncached runs, per prompt
  bool teacache = false;         // the TeaCache-style signal (bench only)
};

std::string AccuracyCells(const std::vector<Sample>& s) {
  std::vector<training::AttributeMatch> m;
  for (const Sample& x : s) m.push_back(x.match);
  const training::Accuracy a = training::Summarise(m);
  return absl::StrFormat("%.3f | %.3f | %.3f | %.3f | %.3f", a.background,
                         a.shape_colour, a.position, a.shape, a.all);
}

int Main(int argc, char** argv) {
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
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
  absl::StatusOr<std::unique_ptr<models::Pipeline>> loaded =
      models::Pipeline::LoadFromDirectory(dir);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
    return 3;
  }
  const models::Pipeline& p = **loaded;
  Options o;
  o.size = absl::GetFlag(FLAGS_size) > 0 ? absl::GetFlag(FLAGS_size)
                                         : p.config().default_width;
  o.steps = absl::GetFlag(FLAGS_steps) > 0 ? absl::GetFlag(FLAGS_steps)
                                           : p.config().default_steps;
  o.guidance = p.config().default_guidance;
  o.shift = p.config().default_shift;
  const int layers = p.config().dit.num_layers;

  std::vector<Row> rows;
  for (const std::string& name : absl::GetFlag(FLAGS_presets)) {
    absl::StatusOr<common::StepCacheSettings> s =
        common::StepCachePreset(name, "--presets");
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
      return 1;
    }
    rows.push_back({name, *s, {}, {}, {}});
  }
  for (const bool teacache : {false, true}) {
    for (const std::string& spec : teacache ? absl::GetFlag(FLAGS_teacache)
                                            : absl::GetFlag(FLAGS_configs)) {
      std::vector<std::string> f = absl::StrSplit(spec, ':');
      common::StepCacheSettings s;
      models::StepCacheConfig extra;
      std::string name = teacache ? "TeaCache-style" : "first-block";
      bool ok = (f.size() == 3 || (!teacache && f.size() <= 5)) &&
                absl::SimpleAtof(f[0], &s.threshold) &&
                absl::SimpleAtoi(f[1], &s.warmup_steps) &&
                absl::SimpleAtoi(f[2], &s.max_reused_in_a_row);
      if (ok && f.size() > 3) {
        ok = absl::SimpleAtod(f[3], &extra.extrapolation) &&
             extra.extrapolation >= 0;
        name += ", extrapolation " + f[3];
      }
      if (ok && f.size() > 4) {
        ok = absl::SimpleAtoi(f[4], &extra.final_computed_steps) &&
             extra.final_computed_steps >= 1;
        name += ", final " + f[4];
      }
      if (!ok) {
        std::fprintf(stderr,
                     "--%s: \"%s\" is not threshold:warmup:max%s (e.g. "
                     "0.15:2:2)\n",
                     teacache ? "teacache" : "configs", spec.c_str(),
                     teacache ? "" : "[:extrapolation >= 0[:final >= 1]]");
        return 1;
      }
      rows.push_back({name, s, extra, {}, {}, teacache});
    }
  }
  at::Tensor mod0;  // blocks.0.modulation, for the TeaCache-style rows
  if (!absl::GetFlag(FLAGS_teacache).empty()) {
    absl::StatusOr<models::WeightMap> w = models::ReadSafetensors(
        dir + "/model.safetensors",
        [](const std::string& key) { return key == "blocks.0.modulation"; });
    if (!w.ok() || w->count("blocks.0.modulation") == 0) {
      std::fprintf(stderr,
                   "%s/model.safetensors: no blocks.0.modulation (%s)\n",
                   dir.c_str(), w.status().ToString().c_str());
      return 3;
    }
    mod0 =
        w->at("blocks.0.modulation").to(p.dit().numerics().device, at::kFloat);
  }
  for (Row& r : rows) {
    r.config.enabled = true;
    r.config.threshold = r.settings.threshold;
    r.config.warmup_steps = r.settings.warmup_steps;
    r.config.max_reused_in_a_row = r.settings.max_reused_in_a_row;
  }

  if (absl::GetFlag(FLAGS_n) < 1) {
    std::fprintf(stderr, "--n=%d: must be >= 1\n", absl::GetFlag(FLAGS_n));
    return 1;
  }
  std::vector<training::EvalCase> cases = training::MakeEvalCases(
      absl::GetFlag(FLAGS_n), absl::GetFlag(FLAGS_seed));
  std::vector<size_t> index;  // of each case among the --n prompts
  for (size_t i = 0; i < cases.size(); ++i) index.push_back(i);
  if (!absl::GetFlag(FLAGS_only).empty()) {
    std::vector<training::EvalCase> picked;
    index.clear();
    for (const std::string& f : absl::GetFlag(FLAGS_only)) {
      size_t i = 0;
      if (!absl::SimpleAtoi(f, &i) || i >= cases.size()) {
        std::fprintf(stderr,
                     "--only: \"%s\" is not a prompt index in [0, %zu)\n",
                     f.c_str(), cases.size());
        return 1;
      }
      picked.push_back(cases[i]);
      index.push_back(i);
    }
    cases = std::move(picked);
  }
  const models::StepCacheConfig off;
  const Sample warm = Generate(p, cases[0], off, o);  // warm-up, not counted
  if (mod0.defined()) {
    models::StepCacheConfig never;
    never.enabled = true;  // threshold 0: every step computed
    if (!at::equal(GenerateTeaCache(p, mod0, cases[0], never, o).image,
                   warm.image)) {
      std::fprintf(stderr,
                   "the bench's TeaCache-style loop at threshold 0 does not "
                   "reproduce Pipeline's uncached image; its rows would not "
                   "be comparable\n");
      return 3;
    }
  }
  auto run = [&](const Row& r, const training::EvalCase& c) {
    return r.teacache ? GenerateTeaCache(p, mod0, c, r.config, o)
                      : Generate(p, c, r.config, o);
  };
  std::vector<Sample> base;   // the first uncached run of each prompt
  int uncached_mismatch = 0;  // repeated uncached runs that differ
  const absl::Time start = absl::Now();
  const bool timing = absl::GetFlag(FLAGS_timing);
  for (size_t i = 0; i < cases.size(); ++i) {
    if (!timing || rows.empty()) base.push_back(Generate(p, cases[i], off, o));
    for (size_t r = 0; r < rows.size(); ++r) {
      Sample u, c;
      if (!timing) {
        c = run(rows[r], cases[i]);
        rows[r].samples.push_back(std::move(c));
        continue;
      } else if ((i + r) % 2 == 0) {
        u = Generate(p, cases[i], off, o);
        c = run(rows[r], cases[i]);
      } else {
        c = run(rows[r], cases[i]);
        u = Generate(p, cases[i], off, o);
      }
      if (r == 0) {
        base.push_back(u);  // shares the image tensor
      } else if (!at::equal(u.image, base[i].image)) {
        ++uncached_mismatch;
      }
      rows[r].uncached.push_back(std::move(u));
      rows[r].samples.push_back(std::move(c));
    }
    if ((i + 1) % 50 == 0) {
      std::fprintf(stderr, "%zu / %zu prompts, %.0f s\n", i + 1, cases.size(),
                   absl::ToDoubleSeconds(absl::Now() - start));
    }
  }
  std::printf(
      "%zu prompts (MakeEvalCases seed %llu), %dx%d, %d steps, guidance "
      "%.1f, shift %.1f, %d threads, %.0f s; repeated uncached runs "
      "differing from the first: %d\n\n",
      cases.size(), static_cast<unsigned long long>(absl::GetFlag(FLAGS_seed)),
      o.size, o.size, o.steps, o.guidance, o.shift,
      absl::GetFlag(FLAGS_threads), absl::ToDoubleSeconds(absl::Now() - start),
      uncached_mismatch);
  std::printf(
      "| preset | threshold/warmup/max | steps reused | fewer DiT computes "
      "(steps / blocks) | wall-time ratio median / total | CPU-time ratio "
      "median / total | PSNR mean / min dB (< 30 dB) | SSIM mean / min | "
      "background | colour | position | shape | all four (lost / gained) "
      "|\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | "
      "--- | --- |\n");
  std::printf("| uncached | - | 0 | 1.00x / 1.00x | 1 | 1 | - | - | %s |\n",
              AccuracyCells(base).c_str());
  for (const Row& r : rows) {
    int reused = 0, computed = 0, lost = 0, gained = 0, below30 = 0;
    double tc = 0, tu = 0, sc = 0, su = 0, cc = 0, cu = 0, psnr_sum = 0,
           psnr_min = 1e9, ssim_sum = 0, ssim_min = 1e9;
    std::vector<double> ratios, cpu_ratios;
    std::string below30_list;  // each image < 30 dB (stderr)
    for (size_t i = 0; i < cases.size(); ++i) {
      const Sample& s = r.samples[i];
      reused += s.reused;
      computed += s.computed;
      if (timing) {
        const Sample& u = r.uncached[i];
        tc += s.seconds;
        tu += u.seconds;
        sc += s.step_seconds;
        su += u.step_seconds;
        cc += s.cpu_seconds;
        cu += u.cpu_seconds;
        ratios.push_back(u.seconds / s.seconds);
        cpu_ratios.push_back(u.cpu_seconds / s.cpu_seconds);
      }
      const double ps = Psnr(base[i].image, s.image);
      const double ss = Ssim(base[i].image, s.image);
      psnr_sum += ps;
      psnr_min = std::min(psnr_min, ps);
      below30 += ps < 30;
      if (ps < 30) {
        // How many pixels moved by more than half the range (an edge pixel
        // that changed sides) vs by more than 0.1.
        const at::Tensor d =
            std::get<0>((base[i].image - s.image).abs().max(2));
        absl::StrAppendFormat(&below30_list, " %zu: %.1f (%lld/%lld px)",
                              index[i], ps,
                              static_cast<long long>(
                                  (d > 0.5).sum().item<int64_t>()),
                              static_cast<long long>(
                                  (d > 0.1).sum().item<int64_t>()));
      }
      ssim_sum += ss;
      ssim_min = std::min(ssim_min, ss);
      lost += base[i].match.all() && !s.match.all();
      gained += !base[i].match.all() && s.match.all();
    }
    const double n = static_cast<double>(cases.size());
    if (timing) {
      std::fprintf(stderr,
                   "%s %.3g/%d/%d: mean per generation, uncached / cached: "
                   "wall %.1f / %.1f ms (of which steps %.1f / %.1f ms), "
                   "CPU %.1f / %.1f ms\n",
                   r.name.c_str(), r.settings.threshold,
                   r.settings.warmup_steps, r.settings.max_reused_in_a_row,
                   1e3 * tu / n, 1e3 * tc / n, 1e3 * su / n, 1e3 * sc / n,
                   1e3 * cu / n, 1e3 * cc / n);
    }
    if (!below30_list.empty()) {
      std::fprintf(stderr,
                   "%s %.3g/%d/%d: images < 30 dB (prompt: dB (pixels "
                   "|d| > 0.5 / > 0.1)):%s\n",
                   r.name.c_str(), r.settings.threshold,
                   r.settings.warmup_steps, r.settings.max_reused_in_a_row,
                   below30_list.c_str());
    }
    const double steps = static_cast<double>(reused + computed);
    std::string cells = AccuracyCells(r.samples);
    const std::string wall =
        timing
            ? absl::StrFormat("%.2fx / %.2fx | %.2fx / %.2fx", Median(ratios),
                              tu / tc, Median(cpu_ratios), cu / cc)
            : std::string("- | -");
    std::printf(
        "| %s | %.3g/%d/%d | %d of %.0f (%.1f%%) | %.2fx / %.2fx | %s | %.1f "
        "/ %.1f (%d) | %.3f / %.3f | %s (-%d / +%d) |\n",
        r.name.c_str(), r.settings.threshold, r.settings.warmup_steps,
        r.settings.max_reused_in_a_row, reused, steps, 100.0 * reused / steps,
        steps / std::max(1, computed),
        steps * layers /
            std::max(1.0, computed * layers + (r.teacache ? 0.0 : reused)),
        wall.c_str(), psnr_sum / n, psnr_min, below30, ssim_sum / n, ssim_min,
        cells.c_str(), lost, gained);
  }
  return 0;
}

}  // namespace
}  // namespace dserve::bench

int main(int argc, char** argv) {
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  absl::ParseCommandLine(argc, argv);
  return dserve::bench::Main(argc, argv);
}
