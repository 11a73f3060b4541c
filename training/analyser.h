#ifndef DSERVE_TRAINING_ANALYSER_H_
#define DSERVE_TRAINING_ANALYSER_H_

// Reads a picture of one shape on a plain background back into the four
// attributes of a prompt, so the default model's faithfulness can be
// measured without a human:
//   background colour  majority nearest-palette colour of the border;
//   shape mask         the largest 4-connected region of pixels whose
//                      nearest palette colour is not the background's;
//   shape colour       majority nearest-palette colour of the mask;
//   position           the mask centroid: "center" if within kCenterBox of
//                      the middle on both axes, else its quadrant;
//   shape              fill ratio (mask area / bounding-box area): a square
//                      fills ~1, a circle ~π/4, a triangle ~1/2.
//
// Stateless and thread-safe; no torch dependency.

#include <string>

#include "training/shapes.h"

namespace dserve::training {

struct Analysis {
  // False when no shape pixels were found (then only background is set).
  bool found_shape = false;
  Colour background = Colour::kBlack;
  Colour shape_colour = Colour::kBlack;
  ShapeKind shape = ShapeKind::kCircle;
  Position position = Position::kCenter;
  // Diagnostics.
  double fill_ratio = 0;
  double centroid_x = 0;  // fractions of the width / height
  double centroid_y = 0;
  int mask_pixels = 0;
};

// Half-width of the "center" box around the middle, in fractions of the
// side; the nominal centres are 0.25 away, the jitter 0.04.
inline constexpr double kCenterBox = 0.125;

Analysis Analyse(const RgbImage& image);

// Nearest palette colour (squared RGB distance).
Colour NearestColour(const uint8_t* rgb);

// Per-attribute agreement of an analysis with the scene a prompt asked for.
struct AttributeMatch {
  bool background = false;
  bool shape_colour = false;
  bool position = false;
  bool shape = false;
  bool all() const { return background && shape_colour && position && shape; }
};
AttributeMatch Compare(const Scene& wanted, const Analysis& got);

}  // namespace dserve::training

#endif  // DSERVE_TRAINING_ANALYSER_H_
