#include "training/shapes.h"

#include <algorithm>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include "worker/models/model_config.h"
#include "worker/models/text_encoder.h"

namespace dserve::training {
namespace {

TEST(ShapesTest, SameSeedGivesSameScenesImagesAndPrompts) {
  Rng a(42), b(42);
  for (int i = 0; i < 50; ++i) {
    const Scene sa = RandomScene(a), sb = RandomScene(b);
    EXPECT_EQ(RenderScene(sa, 32, 32).rgb, RenderScene(sb, 32, 32).rgb);
    EXPECT_EQ(RandomPrompt(sa, a), RandomPrompt(sb, b));
  }
}

TEST(ShapesTest, DifferentSeedsDiffer) {
  Rng a(1), b(2);
  int same = 0;
  for (int i = 0; i < 20; ++i) {
    same += RenderScene(RandomScene(a), 32, 32).rgb ==
            RenderScene(RandomScene(b), 32, 32).rgb;
  }
  EXPECT_LT(same, 3);
}

TEST(ShapesTest, KnownSceneRendersAndDescribes) {
  Rng rng(0);
  Scene s = SceneWith(Colour::kBlue, Colour::kRed, ShapeKind::kSquare,
                      Position::kTopLeft, rng);
  EXPECT_EQ(CanonicalPrompt(s),
            "a red square on a blue background, top left");
  const RgbImage img = RenderScene(s, 32, 32);
  // The square's centre is within jitter of (8, 8); the far corner is
  // background.
  const auto red = ColourRgb(Colour::kRed), blue = ColourRgb(Colour::kBlue);
  EXPECT_TRUE(std::equal(red.begin(), red.end(), img.Pixel(8, 8)));
  EXPECT_TRUE(std::equal(blue.begin(), blue.end(), img.Pixel(28, 28)));
}

TEST(ShapesTest, ShapeColourNeverEqualsBackgroundAndAllValuesOccur) {
  Rng rng(7);
  std::set<int> bgs, fgs, shapes, positions;
  for (int i = 0; i < 2000; ++i) {
    const Scene s = RandomScene(rng);
    ASSERT_NE(s.background, s.shape_colour);
    bgs.insert(static_cast<int>(s.background));
    fgs.insert(static_cast<int>(s.shape_colour));
    shapes.insert(static_cast<int>(s.shape));
    positions.insert(static_cast<int>(s.position));
  }
  EXPECT_EQ(bgs.size(), kNumColours);
  EXPECT_EQ(fgs.size(), kNumColours);
  EXPECT_EQ(shapes.size(), kNumShapes);
  EXPECT_EQ(positions.size(), kNumPositions);
}

TEST(ShapesTest, PromptsUseOnlyTheModelVocabularyAndVary) {
  const models::PipelineConfig config = models::DefaultModelConfig();
  const models::WordTokenizer tok(config.vocabulary);
  Rng rng(3);
  std::set<std::string> distinct;
  for (int i = 0; i < 2000; ++i) {
    const Scene s = RandomScene(rng);
    const std::string p = RandomPrompt(s, rng);
    EXPECT_TRUE(tok.Encode(p).unknown_words.empty()) << p;
    EXPECT_LE(tok.Encode(p).ids.size(), 16u) << p;
    EXPECT_FALSE(p.empty());
    distinct.insert(p);
  }
  for (const std::string& w : PromptWords()) {
    EXPECT_TRUE(tok.Encode(w).unknown_words.empty()) << w;
  }
  EXPECT_GT(distinct.size(), 500u);
}

TEST(ShapesTest, PartialPromptsMentionOnlyTheirScene) {
  Rng rng(11);
  for (int i = 0; i < 500; ++i) {
    const Scene s = RandomScene(rng);
    const std::string p = RandomPrompt(s, rng);
    for (int c = 0; c < kNumColours; ++c) {
      const Colour col = static_cast<Colour>(c);
      if (col == s.background || col == s.shape_colour) continue;
      EXPECT_EQ(p.find(ColourName(col)), std::string::npos) << p;
    }
  }
}

}  // namespace
}  // namespace dserve::training
