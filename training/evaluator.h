#ifndef DSERVE_TRAINING_EVALUATOR_H_
#define DSERVE_TRAINING_EVALUATOR_H_

// Measures how faithfully a pipeline draws shapes prompts: generate from
// canonical prompts with fixed seeds, analyse each image (analyser.h) and
// count per-attribute agreement with the prompt. Also checks the analyser
// itself on ground-truth renders, and lays images out on a contact sheet.
//
// Stateless functions; thread-safe as far as the Pipeline is (one caller
// per Pipeline at a time is always safe). Generation blocks until done.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "training/analyser.h"
#include "training/shapes.h"
#include "worker/models/pipeline.h"

namespace dserve::training {

struct EvalCase {
  Scene scene;         // what the prompt asks for
  std::string prompt;  // CanonicalPrompt(scene)
  uint64_t seed = 0;   // noise seed for the generation
};

// `n` cases, a pure function of (n, seed).
std::vector<EvalCase> MakeEvalCases(int n, uint64_t seed);

struct Accuracy {
  int n = 0;
  double background = 0;
  double shape_colour = 0;
  double position = 0;
  double shape = 0;
  double all = 0;  // all four attributes right
};

// Fractions over `matches`.
Accuracy Summarise(const std::vector<AttributeMatch>& matches);

// The analyser on `n` ground-truth renders at size x size (RandomScene
// from `seed`): the fraction it reads back correctly.
Accuracy AnalyserGroundTruthAccuracy(int n, uint64_t seed, int size);

struct EvalOptions {
  int size = 32;          // width = height
  int steps = 20;
  float guidance = 4.0f;  // 1 = no CFG
  float shift = 1.0f;
  int batch = 16;         // items per Pipeline batch
};

struct EvalResult {
  Accuracy accuracy;
  std::vector<RgbImage> images;  // one per case, in order
  std::vector<Analysis> analyses;
  std::vector<AttributeMatch> matches;
};

// Generates every case (empty negative prompt) and scores it.
absl::StatusOr<EvalResult> EvaluatePipeline(const models::Pipeline& pipeline,
                                            const std::vector<EvalCase>& cases,
                                            const EvalOptions& options);

// Images (all the same size) in a grid of `columns`, `gap` grey pixels
// between cells, each cell scaled up by the integer `zoom`.
RgbImage ContactSheet(const std::vector<RgbImage>& images, int columns,
                      int zoom, int gap);

}  // namespace dserve::training

#endif  // DSERVE_TRAINING_EVALUATOR_H_
