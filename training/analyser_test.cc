#include "training/analyser.h"

#include <gtest/gtest.h>
#include "training/evaluator.h"

namespace dserve::training {
namespace {

TEST(AnalyserTest, ReadsGroundTruthRendersAtLeast99Percent) {
  for (int size : {32, 64}) {
    const Accuracy a = AnalyserGroundTruthAccuracy(3000, 5, size);
    EXPECT_GE(a.all, 0.99) << "size " << size << ": bg " << a.background
                           << " colour " << a.shape_colour << " position "
                           << a.position << " shape " << a.shape;
    EXPECT_EQ(a.background, 1.0);
    EXPECT_EQ(a.shape_colour, 1.0);
  }
}

TEST(AnalyserTest, KnownScene) {
  Rng rng(1);
  const Scene s = SceneWith(Colour::kWhite, Colour::kPurple,
                            ShapeKind::kTriangle, Position::kBottomRight, rng);
  const Analysis a = Analyse(RenderScene(s, 32, 32));
  ASSERT_TRUE(a.found_shape);
  EXPECT_EQ(a.background, Colour::kWhite);
  EXPECT_EQ(a.shape_colour, Colour::kPurple);
  EXPECT_EQ(a.shape, ShapeKind::kTriangle);
  EXPECT_EQ(a.position, Position::kBottomRight);
  EXPECT_TRUE(Compare(s, a).all());
}

TEST(AnalyserTest, PlainImageHasNoShape) {
  RgbImage img;
  img.width = img.height = 16;
  img.rgb.assign(3 * 16 * 16, 0);
  const Analysis a = Analyse(img);
  EXPECT_FALSE(a.found_shape);
  EXPECT_EQ(a.background, Colour::kBlack);
  Rng rng(0);
  const Scene s = SceneWith(Colour::kBlack, Colour::kRed, ShapeKind::kCircle,
                            Position::kCenter, rng);
  const AttributeMatch m = Compare(s, a);
  EXPECT_TRUE(m.background);
  EXPECT_FALSE(m.shape_colour || m.position || m.shape);
}

TEST(AnalyserTest, IgnoresSpecklesOutsideTheShape) {
  Rng rng(2);
  const Scene s = SceneWith(Colour::kGreen, Colour::kYellow,
                            ShapeKind::kSquare, Position::kTopRight, rng);
  RgbImage img = RenderScene(s, 32, 32);
  // A stray yellow pixel in the bottom-left must not move the centroid.
  const auto y = ColourRgb(Colour::kYellow);
  std::copy(y.begin(), y.end(), &img.rgb[3 * (28 * 32 + 3)]);
  EXPECT_TRUE(Compare(s, Analyse(img)).all());
}

}  // namespace
}  // namespace dserve::training
