#include "training/shapes.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

namespace dserve::training {
namespace {

constexpr const char* kColourNames[kNumColours] = {
    "red", "green", "blue", "yellow", "orange", "purple", "white", "black"};
// Chosen far apart in RGB so nearest-colour analysis is unambiguous.
constexpr std::array<uint8_t, 3> kColourRgb[kNumColours] = {
    {{220, 30, 30}},   {{30, 170, 50}},  {{30, 60, 220}},
    {{240, 220, 30}},  {{245, 140, 20}}, {{140, 40, 180}},
    {{245, 245, 245}}, {{15, 15, 15}}};
constexpr const char* kShapeNames[kNumShapes] = {"circle", "square",
                                                 "triangle"};
constexpr const char* kPositionNames[kNumPositions] = {
    "top left", "top right", "bottom left", "bottom right", "center"};

bool Inside(const Scene& s, double px, double py) {
  const double dx = px - s.cx, dy = py - s.cy, r = s.half_size;
  switch (s.shape) {
    case ShapeKind::kCircle:
      return dx * dx + dy * dy <= r * r;
    case ShapeKind::kSquare:
      return std::abs(dx) <= r && std::abs(dy) <= r;
    case ShapeKind::kTriangle: {
      if (dy < -r || dy > r) return false;
      // Half width grows linearly from 0 at the apex to r at the base.
      const double half_width = (dy + r) / 2.0;
      return std::abs(dx) <= half_width;
    }
  }
  return false;
}

}  // namespace

const char* ColourName(Colour c) { return kColourNames[static_cast<int>(c)]; }
const char* ShapeName(ShapeKind s) { return kShapeNames[static_cast<int>(s)]; }
const char* PositionName(Position p) {
  return kPositionNames[static_cast<int>(p)];
}
std::array<uint8_t, 3> ColourRgb(Colour c) {
  return kColourRgb[static_cast<int>(c)];
}

int Rng::UniformInt(int n) {
  return static_cast<int>(Next() % static_cast<uint64_t>(n));
}

double Rng::Uniform() {
  return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0);
}

void PositionCentre(Position p, double& cx, double& cy) {
  switch (p) {
    case Position::kTopLeft: cx = 0.25; cy = 0.25; return;
    case Position::kTopRight: cx = 0.75; cy = 0.25; return;
    case Position::kBottomLeft: cx = 0.25; cy = 0.75; return;
    case Position::kBottomRight: cx = 0.75; cy = 0.75; return;
    case Position::kCenter: cx = 0.5; cy = 0.5; return;
  }
}

Scene SceneWith(Colour background, Colour shape_colour, ShapeKind shape,
                Position position, Rng& rng) {
  Scene s;
  s.background = background;
  s.shape_colour = shape_colour;
  s.shape = shape;
  s.position = position;
  PositionCentre(position, s.cx, s.cy);
  s.cx += (2.0 * rng.Uniform() - 1.0) * kPositionJitter;
  s.cy += (2.0 * rng.Uniform() - 1.0) * kPositionJitter;
  s.half_size = kMinHalfSize + rng.Uniform() * (kMaxHalfSize - kMinHalfSize);
  return s;
}

Scene RandomScene(Rng& rng) {
  const int bg = rng.UniformInt(kNumColours);
  // Shape colour from the other seven, uniformly.
  int fg = rng.UniformInt(kNumColours - 1);
  if (fg >= bg) ++fg;
  const int shape = rng.UniformInt(kNumShapes);
  const int pos = rng.UniformInt(kNumPositions);
  return SceneWith(static_cast<Colour>(bg), static_cast<Colour>(fg),
                   static_cast<ShapeKind>(shape), static_cast<Position>(pos),
                   rng);
}

RgbImage RenderScene(const Scene& scene, int width, int height) {
  RgbImage img;
  img.width = width;
  img.height = height;
  img.rgb.resize(3 * static_cast<size_t>(width) * height);
  const std::array<uint8_t, 3> bg = ColourRgb(scene.background);
  const std::array<uint8_t, 3> fg = ColourRgb(scene.shape_colour);
  // Shape coordinates are in units of the shorter side, centred.
  const double side = std::min(width, height);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const double px = (x + 0.5 - width / 2.0) / side + 0.5;
      const double py = (y + 0.5 - height / 2.0) / side + 0.5;
      const std::array<uint8_t, 3>& c = Inside(scene, px, py) ? fg : bg;
      uint8_t* out = &img.rgb[3 * (static_cast<size_t>(y) * width + x)];
      out[0] = c[0];
      out[1] = c[1];
      out[2] = c[2];
    }
  }
  return img;
}

std::string CanonicalPrompt(const Scene& s) {
  std::ostringstream out;
  out << "a " << ColourName(s.shape_colour) << " " << ShapeName(s.shape)
      << " on a " << ColourName(s.background) << " background, "
      << PositionName(s.position);
  return out.str();
}

std::string RandomPrompt(const Scene& s, Rng& rng) {
  if (rng.UniformInt(2) == 0) return CanonicalPrompt(s);
  // Each attribute is kept with probability 3/4; at least one survives.
  bool colour, shape, bg, pos;
  do {
    colour = rng.UniformInt(4) != 0;
    shape = rng.UniformInt(4) != 0;
    bg = rng.UniformInt(4) != 0;
    pos = rng.UniformInt(4) != 0;
  } while (!colour && !shape && !bg && !pos);
  enum Clause { kObject, kBackground, kPlace };
  std::vector<Clause> clauses;
  if (colour || shape) clauses.push_back(kObject);
  if (bg) clauses.push_back(kBackground);
  if (pos) clauses.push_back(kPlace);
  // Fisher-Yates with our own Rng (std::shuffle is library-specific).
  for (int i = static_cast<int>(clauses.size()) - 1; i > 0; --i) {
    std::swap(clauses[i], clauses[rng.UniformInt(i + 1)]);
  }
  std::string text;
  for (size_t i = 0; i < clauses.size(); ++i) {
    std::string part;
    switch (clauses[i]) {
      case kObject:
        part = std::string("a ") + (colour ? ColourName(s.shape_colour) : "") +
               (colour ? " " : "") + (shape ? ShapeName(s.shape) : "shape");
        break;
      case kBackground: {
        const bool after_object = i > 0 && clauses[i - 1] == kObject;
        const char* lead = after_object && rng.UniformInt(2) == 0 ? "on a "
                           : rng.UniformInt(2) == 0               ? "a "
                                                                  : "";
        part = std::string(lead) + ColourName(s.background) + " background";
        break;
      }
      case kPlace: {
        const int form = rng.UniformInt(3);
        part = std::string(form == 0 ? "" : form == 1 ? "in the " : "at the ") +
               PositionName(s.position);
        break;
      }
    }
    if (!text.empty()) {
      // "on a ..." continues the object clause without a comma.
      text += part.rfind("on ", 0) == 0 ? " " : ", ";
    }
    text += part;
  }
  return text;
}

std::vector<std::string> PromptWords() {
  std::set<std::string> words = {"a",  "on", "background", "in",
                                 "the", "at", "shape",      "top",
                                 "bottom", "left", "right", "center"};
  for (const char* c : kColourNames) words.insert(c);
  for (const char* s : kShapeNames) words.insert(s);
  return {words.begin(), words.end()};
}

}  // namespace dserve::training
