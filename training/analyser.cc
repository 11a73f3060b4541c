#include "training/analyser.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

namespace dserve::training {
namespace {

// Fill-ratio boundaries between the classes: midway between the ideal
// values 1/2 (triangle), π/4 (circle) and 1 (square), nudged towards the
// square because rasterised squares fill their box exactly.
constexpr double kTriangleCircle = 0.64;
constexpr double kCircleSquare = 0.9;

int Argmax(const std::array<int, kNumColours>& counts) {
  return static_cast<int>(std::max_element(counts.begin(), counts.end()) -
                          counts.begin());
}

}  // namespace

Colour NearestColour(const uint8_t* rgb) {
  int best = 0;
  int best_d = 1 << 30;
  for (int c = 0; c < kNumColours; ++c) {
    const std::array<uint8_t, 3> p = ColourRgb(static_cast<Colour>(c));
    int d = 0;
    for (int k = 0; k < 3; ++k) {
      const int diff = static_cast<int>(rgb[k]) - p[k];
      d += diff * diff;
    }
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return static_cast<Colour>(best);
}

Analysis Analyse(const RgbImage& image) {
  Analysis a;
  const int w = image.width, h = image.height;
  if (w < 2 || h < 2) return a;
  // Class of every pixel.
  std::vector<int> cls(static_cast<size_t>(w) * h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      cls[y * w + x] = static_cast<int>(NearestColour(image.Pixel(x, y)));
    }
  }
  // Background: majority class of the one-pixel border (a shape may touch
  // the border near a corner, but never covers most of it).
  std::array<int, kNumColours> border{};
  for (int x = 0; x < w; ++x) {
    ++border[cls[x]];
    ++border[cls[(h - 1) * w + x]];
  }
  for (int y = 1; y < h - 1; ++y) {
    ++border[cls[y * w]];
    ++border[cls[y * w + w - 1]];
  }
  const int bg = Argmax(border);
  a.background = static_cast<Colour>(bg);

  // Shape: the largest 4-connected region of non-background pixels, so
  // stray speckles of a generated image do not move the centroid.
  std::vector<int> label(cls.size(), -1);
  std::vector<int> best_pixels;
  std::vector<int> stack, region;
  for (int start = 0; start < static_cast<int>(cls.size()); ++start) {
    if (cls[start] == bg || label[start] >= 0) continue;
    region.clear();
    stack.push_back(start);
    label[start] = start;
    while (!stack.empty()) {
      const int p = stack.back();
      stack.pop_back();
      region.push_back(p);
      const int px = p % w, py = p / w;
      const int nbrs[4][2] = {{px - 1, py}, {px + 1, py}, {px, py - 1},
                              {px, py + 1}};
      for (const auto& n : nbrs) {
        if (n[0] < 0 || n[0] >= w || n[1] < 0 || n[1] >= h) continue;
        const int q = n[1] * w + n[0];
        if (cls[q] == bg || label[q] >= 0) continue;
        label[q] = start;
        stack.push_back(q);
      }
    }
    if (region.size() > best_pixels.size()) best_pixels = region;
  }
  if (best_pixels.empty()) return a;
  a.found_shape = true;
  a.mask_pixels = static_cast<int>(best_pixels.size());
  std::array<int, kNumColours> colours{};
  double sx = 0, sy = 0;
  int x0 = w, x1 = -1, y0 = h, y1 = -1;
  for (int p : best_pixels) {
    const int px = p % w, py = p / w;
    ++colours[cls[p]];
    sx += px + 0.5;
    sy += py + 0.5;
    x0 = std::min(x0, px);
    x1 = std::max(x1, px);
    y0 = std::min(y0, py);
    y1 = std::max(y1, py);
  }
  a.shape_colour = static_cast<Colour>(Argmax(colours));
  a.centroid_x = sx / a.mask_pixels / w;
  a.centroid_y = sy / a.mask_pixels / h;
  const bool center = std::abs(a.centroid_x - 0.5) < kCenterBox &&
                      std::abs(a.centroid_y - 0.5) < kCenterBox;
  if (center) {
    a.position = Position::kCenter;
  } else if (a.centroid_y < 0.5) {
    a.position = a.centroid_x < 0.5 ? Position::kTopLeft : Position::kTopRight;
  } else {
    a.position =
        a.centroid_x < 0.5 ? Position::kBottomLeft : Position::kBottomRight;
  }
  const double box = static_cast<double>(x1 - x0 + 1) * (y1 - y0 + 1);
  a.fill_ratio = a.mask_pixels / box;
  a.shape = a.fill_ratio < kTriangleCircle ? ShapeKind::kTriangle
            : a.fill_ratio < kCircleSquare ? ShapeKind::kCircle
                                           : ShapeKind::kSquare;
  return a;
}

AttributeMatch Compare(const Scene& wanted, const Analysis& got) {
  AttributeMatch m;
  m.background = got.background == wanted.background;
  m.shape_colour = got.found_shape && got.shape_colour == wanted.shape_colour;
  m.position = got.found_shape && got.position == wanted.position;
  m.shape = got.found_shape && got.shape == wanted.shape;
  return m;
}

}  // namespace dserve::training
