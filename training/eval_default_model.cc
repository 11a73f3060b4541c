// Measures the default model (or any shapes model directory): the
// analyser's ground-truth check, then per-attribute and all-four accuracy
// over --n canonical prompts without CFG (guidance 1) and with
// --guidance; writes a contact sheet of the guided images and a text file
// naming the prompt of every cell.
//
//   eval_default_model --model_dir=worker/models/default_model/weights
//       --n=400 --steps=20 --guidance=4 --sheet=docs/default_model_contact_sheet.png

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "common/blas_kernels.h"
#include "common/png.h"
#include "training/evaluator.h"
#include "worker/models/default_model/weights_path.h"
#include "worker/models/pipeline.h"
#include <ATen/Parallel.h>

ABSL_FLAG(std::string, model_dir, "",
          "Directory with config.json + model.safetensors; empty = the "
          "shipped default model (from runfiles).");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads.");
ABSL_FLAG(int, n, 400, "Prompts to evaluate.");
ABSL_FLAG(uint64_t, seed, 2024, "Seed of the prompts and their noise.");
ABSL_FLAG(int, steps, 20, "Sampling steps.");
ABSL_FLAG(double, guidance, 4.0, "CFG scale for the guided run.");
ABSL_FLAG(double, shift, 0, "Flow shift; 0 = the model's default.");
ABSL_FLAG(int, size, 0, "Image size; 0 = the model's default width.");
ABSL_FLAG(int, analyser_n, 2000, "Ground-truth renders for the analyser "
          "check.");
ABSL_FLAG(std::string, sheet, "", "Contact sheet PNG path (guided images); "
          "the prompts go to the same path + \".txt\". Empty = none.");
ABSL_FLAG(int, sheet_n, 48, "Images on the contact sheet.");

namespace dserve::training {
namespace {

void Print(const char* label, const Accuracy& a) {
  std::printf("%-26s n=%d  background %.3f  shape_colour %.3f  position "
              "%.3f  shape %.3f  all_four %.3f\n",
              label, a.n, a.background, a.shape_colour, a.position, a.shape,
              a.all);
}

int Run(int argc, char** argv) {
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  std::string dir = absl::GetFlag(FLAGS_model_dir);
  if (dir.empty()) {
    absl::StatusOr<std::string> found =
        default_model::DefaultModelDirectory(argv[0]);
    if (!found.ok()) {
      std::fprintf(stderr, "%s\n", found.status().ToString().c_str());
      return 1;
    }
    dir = *found;
  }
  auto pipeline = models::Pipeline::LoadFromDirectory(dir);
  if (!pipeline.ok()) {
    std::fprintf(stderr, "%s\n", pipeline.status().ToString().c_str());
    return 1;
  }
  EvalOptions o;
  o.size = absl::GetFlag(FLAGS_size) > 0 ? absl::GetFlag(FLAGS_size)
                                         : (*pipeline)->config().default_width;
  o.steps = absl::GetFlag(FLAGS_steps);
  o.shift = absl::GetFlag(FLAGS_shift) > 0
                ? static_cast<float>(absl::GetFlag(FLAGS_shift))
                : (*pipeline)->config().default_shift;

  const Accuracy gt = AnalyserGroundTruthAccuracy(
      absl::GetFlag(FLAGS_analyser_n), absl::GetFlag(FLAGS_seed), o.size);
  Print("analyser on ground truth", gt);
  if (gt.all < 0.99) {
    std::fprintf(stderr, "analyser all-four accuracy %.3f < 0.99 on ground "
                 "truth; the numbers below would not be trustworthy\n",
                 gt.all);
    return 1;
  }
  const std::vector<EvalCase> cases =
      MakeEvalCases(absl::GetFlag(FLAGS_n), absl::GetFlag(FLAGS_seed));
  EvalResult guided;
  for (float g : {1.0f, static_cast<float>(absl::GetFlag(FLAGS_guidance))}) {
    o.guidance = g;
    absl::StatusOr<EvalResult> r = EvaluatePipeline(**pipeline, cases, o);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    Print(absl::StrFormat("model, guidance %.1f", g).c_str(), r->accuracy);
    std::fflush(stdout);
    guided = *std::move(r);
  }
  const std::string sheet_path = absl::GetFlag(FLAGS_sheet);
  if (!sheet_path.empty()) {
    const int k = std::min<int>(absl::GetFlag(FLAGS_sheet_n),
                                static_cast<int>(guided.images.size()));
    const int columns = 8;
    std::vector<RgbImage> images(guided.images.begin(),
                                 guided.images.begin() + k);
    const RgbImage sheet = ContactSheet(images, columns, /*zoom=*/3,
                                        /*gap=*/4);
    absl::StatusOr<std::string> png =
        common::EncodePng(sheet.rgb.data(), sheet.width, sheet.height);
    if (!png.ok()) {
      std::fprintf(stderr, "%s\n", png.status().ToString().c_str());
      return 1;
    }
    std::ofstream(sheet_path, std::ios::binary) << *png;
    std::ofstream txt(sheet_path + ".txt");
    txt << absl::StrFormat("# %s: %d steps, guidance %.1f, %dx%d; cells row "
                           "by row, %d per row. ok = analyser agrees on all "
                           "four attributes.\n",
                           dir, o.steps, o.guidance, o.size, o.size, columns);
    for (int i = 0; i < k; ++i) {
      txt << absl::StrFormat("%2d seed=%d %s  %s\n", i, cases[i].seed,
                             guided.matches[i].all() ? "ok  " : "MISS",
                             cases[i].prompt);
    }
    std::printf("wrote %s and %s.txt\n", sheet_path.c_str(),
                sheet_path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace dserve::training

int main(int argc, char** argv) {
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  absl::ParseCommandLine(argc, argv);
  return dserve::training::Run(argc, argv);
}
