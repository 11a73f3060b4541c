#ifndef DSERVE_TRAINING_SHAPES_H_
#define DSERVE_TRAINING_SHAPES_H_

// The default model's world: one coloured shape on a plain background.
// A Scene is drawn (RandomScene), rendered to RGB (RenderScene) and
// described in words (CanonicalPrompt, RandomPrompt). Everything is
// deterministic from the caller's Rng, which uses only the raw 64-bit
// output of std::mt19937_64 (no std distributions, whose results differ
// between standard libraries), so a seed gives the same data everywhere.
//
// Plain values and free functions; no torch dependency. Thread-compatible:
// an Rng must not be shared between threads, everything else is stateless.

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace dserve::training {

enum class Colour { kRed, kGreen, kBlue, kYellow, kOrange, kPurple, kWhite,
                    kBlack };
enum class ShapeKind { kCircle, kSquare, kTriangle };
enum class Position { kTopLeft, kTopRight, kBottomLeft, kBottomRight,
                      kCenter };

inline constexpr int kNumColours = 8;
inline constexpr int kNumShapes = 3;
inline constexpr int kNumPositions = 5;

// Words as they appear in prompts ("red", "triangle", "top left").
const char* ColourName(Colour c);
const char* ShapeName(ShapeKind s);
const char* PositionName(Position p);
// The rendered 8-bit RGB value of each colour.
std::array<uint8_t, 3> ColourRgb(Colour c);

// Deterministic random source (see file comment).
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  uint64_t Next() { return engine_(); }
  // Uniform integer in [0, n), n >= 1.
  int UniformInt(int n);
  // Uniform double in [0, 1).
  double Uniform();

 private:
  std::mt19937_64 engine_;
};

struct Scene {
  Colour background = Colour::kBlack;
  Colour shape_colour = Colour::kWhite;
  ShapeKind shape = ShapeKind::kCircle;
  Position position = Position::kCenter;
  // Shape centre and half-extent as fractions of the image side.
  double cx = 0.5;
  double cy = 0.5;
  double half_size = 0.18;
};

// Nominal centre of a position (fractions of the side, y down).
void PositionCentre(Position p, double& cx, double& cy);

// Uniform over (background, shape colour != background, shape, position);
// the centre is jittered by up to kPositionJitter and the half-size drawn
// from [kMinHalfSize, kMaxHalfSize].
inline constexpr double kPositionJitter = 0.04;
inline constexpr double kMinHalfSize = 0.16;
inline constexpr double kMaxHalfSize = 0.22;
Scene RandomScene(Rng& rng);
// Like RandomScene but with the given attributes.
Scene SceneWith(Colour background, Colour shape_colour, ShapeKind shape,
                Position position, Rng& rng);

// Row-major 8-bit RGB.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // 3·width·height
  const uint8_t* Pixel(int x, int y) const {
    return &rgb[3 * (static_cast<size_t>(y) * width + x)];
  }
};

// Hard-edged rendering (a pixel belongs to the shape if its centre does):
// circle of radius half_size; axis-aligned square of half side half_size;
// upward triangle with its apex at cy - half_size and its base (width
// 2·half_size) at cy + half_size. Sizes are fractions of min(width, height).
RgbImage RenderScene(const Scene& scene, int width, int height);

// "a red circle on a blue background, top left".
std::string CanonicalPrompt(const Scene& scene);

// A prompt for `scene` drawn from the grammar the model is trained on:
// the canonical sentence, its clauses in another order, or a subset of
// them (attributes left out are unconstrained), with small wording
// variations ("in the top left", "blue background", "a red shape").
std::string RandomPrompt(const Scene& scene, Rng& rng);

// Every word RandomPrompt and CanonicalPrompt can emit, sorted.
std::vector<std::string> PromptWords();

}  // namespace dserve::training

#endif  // DSERVE_TRAINING_SHAPES_H_
