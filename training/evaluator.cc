#include "training/evaluator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/models/pixels.h"
#include <ATen/ATen.h>

namespace dserve::training {

std::vector<EvalCase> MakeEvalCases(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<EvalCase> cases;
  for (int i = 0; i < n; ++i) {
    EvalCase c;
    c.scene = RandomScene(rng);
    c.prompt = CanonicalPrompt(c.scene);
    c.seed = rng.Next() >> 1;  // keep it well inside int64 for clients
    cases.push_back(std::move(c));
  }
  return cases;
}

Accuracy Summarise(const std::vector<AttributeMatch>& matches) {
  Accuracy a;
  a.n = static_cast<int>(matches.size());
  if (a.n == 0) return a;
  for (const AttributeMatch& m : matches) {
    a.background += m.background;
    a.shape_colour += m.shape_colour;
    a.position += m.position;
    a.shape += m.shape;
    a.all += m.all();
  }
  for (double* v : {&a.background, &a.shape_colour, &a.position, &a.shape,
                    &a.all}) {
    *v /= a.n;
  }
  return a;
}

Accuracy AnalyserGroundTruthAccuracy(int n, uint64_t seed, int size) {
  Rng rng(seed);
  std::vector<AttributeMatch> matches;
  for (int i = 0; i < n; ++i) {
    const Scene scene = RandomScene(rng);
    matches.push_back(Compare(scene, Analyse(RenderScene(scene, size, size))));
  }
  return Summarise(matches);
}

absl::StatusOr<EvalResult> EvaluatePipeline(const models::Pipeline& pipeline,
                                            const std::vector<EvalCase>& cases,
                                            const EvalOptions& options) {
  if (options.batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("eval batch = ", options.batch, "; must be >= 1"));
  }
  EvalResult result;
  for (size_t first = 0; first < cases.size(); first += options.batch) {
    const size_t last =
        std::min(cases.size(), first + static_cast<size_t>(options.batch));
    models::GenerationSpec spec;
    spec.width = spec.height = options.size;
    spec.num_frames = 1;
    spec.num_steps = options.steps;
    spec.flow_shift = options.shift;
    for (size_t i = first; i < last; ++i) {
      models::GenerationItem item;
      item.prompt = cases[i].prompt;
      item.seed = cases[i].seed;
      item.guidance_scale = options.guidance;
      spec.items.push_back(std::move(item));
    }
    absl::StatusOr<models::DenoiseState> state = pipeline.Prepare(spec);
    if (!state.ok()) return state.status();
    for (int s = 0; s < options.steps; ++s) {
      absl::Status st = pipeline.Step(*state);
      if (!st.ok()) return st;
    }
    at::Tensor pixels = pipeline.Decode(*state);  // [B, F, H, W, 3]
    for (size_t i = first; i < last; ++i) {
      absl::StatusOr<std::vector<uint8_t>> rgb = models::ToRgb8(
          pixels.select(0, static_cast<int64_t>(i - first)).select(0, 0));
      if (!rgb.ok()) return rgb.status();
      RgbImage img;
      img.width = img.height = options.size;
      img.rgb = *std::move(rgb);
      result.analyses.push_back(Analyse(img));
      result.matches.push_back(
          Compare(cases[i].scene, result.analyses.back()));
      result.images.push_back(std::move(img));
    }
  }
  result.accuracy = Summarise(result.matches);
  return result;
}

RgbImage ContactSheet(const std::vector<RgbImage>& images, int columns,
                      int zoom, int gap) {
  RgbImage sheet;
  if (images.empty() || columns < 1 || zoom < 1 || gap < 0) return sheet;
  const int cw = images[0].width * zoom, ch = images[0].height * zoom;
  const int n = static_cast<int>(images.size());
  const int rows = (n + columns - 1) / columns;
  sheet.width = columns * cw + (columns + 1) * gap;
  sheet.height = rows * ch + (rows + 1) * gap;
  sheet.rgb.assign(3 * static_cast<size_t>(sheet.width) * sheet.height, 128);
  for (int i = 0; i < n; ++i) {
    const RgbImage& img = images[i];
    const int ox = gap + (i % columns) * (cw + gap);
    const int oy = gap + (i / columns) * (ch + gap);
    for (int y = 0; y < ch && y / zoom < img.height; ++y) {
      for (int x = 0; x < cw && x / zoom < img.width; ++x) {
        const uint8_t* src = img.Pixel(x / zoom, y / zoom);
        uint8_t* dst =
            &sheet
                 .rgb[3 * (static_cast<size_t>(oy + y) * sheet.width + ox + x)];
        std::copy(src, src + 3, dst);
      }
    }
  }
  return sheet;
}

}  // namespace dserve::training
