#include "common/generation_limits.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::common {
namespace {

using ::testing::HasSubstr;

GenerationLimits WanLike() {
  GenerationLimits l;
  l.size_step = 16;
  l.max_width = 1280;
  l.max_height = 1280;
  l.frame_step = 4;
  l.max_frames = 81;
  l.max_steps = 100;
  l.min_guidance = 0;
  l.max_guidance = 20;
  l.min_shift = 1;
  l.max_shift = 10;
  l.words_tokenizer = false;
  l.max_prompt_tokens = 512;
  l.samplers = {2, 1};
  return l;
}

GenerationShape Ok() { return {832, 480, 81, 50, 5.0f, 2}; }

TEST(GenerationLimitsTest, AcceptsEveryBound) {
  const GenerationLimits l = WanLike();
  for (GenerationShape s :
       {Ok(), GenerationShape{16, 16, 1, 1, 1.0f, 0},
        GenerationShape{1280, 1280, 5, 100, 10.0f, 1}}) {
    EXPECT_TRUE(CheckGenerationShape(l, s).ok());
  }
}

TEST(GenerationLimitsTest, FrameRuleIsFourKPlusOne) {
  const GenerationLimits l = WanLike();
  for (int f = 1; f <= 90; ++f) {
    GenerationShape s = Ok();
    s.num_frames = f;
    const bool want = f <= 81 && (f - 1) % 4 == 0;
    absl::Status st = CheckGenerationShape(l, s);
    EXPECT_EQ(st.ok(), want) << f;
    if (!want) {
      EXPECT_THAT(std::string(st.message()), HasSubstr("num_frames"));
    }
  }
  GenerationShape s = Ok();
  s.num_frames = 6;
  EXPECT_EQ(CheckGenerationShape(l, s).message(),
            "num_frames: 6 is not of the form 4k+1 (allowed: 4k+1 in 1..81: "
            "1, 5, 9, ..., 81)");
}

TEST(GenerationLimitsTest, NamesFieldValueAndRange) {
  const GenerationLimits l = WanLike();
  GenerationShape s = Ok();
  s.width = 840;
  EXPECT_EQ(CheckGenerationShape(l, s).message(),
            "width: 840 is not a multiple of 16 (allowed: 16..1280, multiples "
            "of 16)");
  s = Ok();
  s.num_steps = 101;
  EXPECT_EQ(CheckGenerationShape(l, s).message(),
            "num_inference_steps: 101 is out of range (allowed: 1..100)");
  s = Ok();
  s.flow_shift = 0.5f;
  EXPECT_THAT(std::string(CheckGenerationShape(l, s).message()),
              HasSubstr("flow_shift: 0.5 is out of range (allowed: 1..10)"));
  s = Ok();
  s.sampler = 3;
  EXPECT_THAT(std::string(CheckGenerationShape(l, s).message()),
              HasSubstr("sampler: 3"));
  EXPECT_FALSE(CheckGenerationItem(l, 20.5f, "a", "").ok());
  EXPECT_FALSE(CheckGenerationItem(l, std::nanf(""), "a", "").ok());
  EXPECT_TRUE(CheckGenerationItem(l, 20.0f, "a", "").ok());
}

TEST(GenerationLimitsTest, PromptWordsCountedLikeTheWordTokenizer) {
  EXPECT_EQ(CountPromptWords(""), 0);
  EXPECT_EQ(CountPromptWords("a red circle, top-left!"), 5);
  EXPECT_EQ(CountPromptWords("  x2y 42 "), 2);
  EXPECT_EQ(CountPromptWords("caf\xC3\xA9 ol\xC3\xA9"), 2);
  GenerationLimits l;  // 16 words, words tokenizer
  std::string sixteen, seventeen;
  for (int i = 0; i < 16; ++i) sixteen += "red ";
  seventeen = sixteen + "red";
  EXPECT_TRUE(CheckGenerationItem(l, 4.0f, sixteen, sixteen).ok());
  EXPECT_EQ(CheckGenerationItem(l, 4.0f, seventeen, "").message(),
            "prompt: 17 words is too long for the model's text encoder "
            "(allowed: 0..16 words)");
  EXPECT_THAT(
      std::string(CheckGenerationItem(l, 4.0f, "", seventeen).message()),
      HasSubstr("negative_prompt: 17 words"));
  // SentencePiece models truncate; nothing to refuse here.
  EXPECT_TRUE(CheckGenerationItem(WanLike(), 4.0f, seventeen, "").ok());
}

TEST(GenerationLimitsTest, EchoValueTruncates) {
  EXPECT_EQ(EchoValue("short"), "short");
  const std::string exact(kMaxEchoChars, 'x');
  EXPECT_EQ(EchoValue(exact), exact);
  const std::string big(10000, 'y');
  EXPECT_EQ(EchoValue(big),
            std::string(kMaxEchoChars, 'y') + "... (10000 bytes)");
  // Never cuts inside a UTF-8 sequence.
  std::string accents;
  for (int i = 0; i < 100; ++i) accents += "\xC3\xA9";
  const std::string echoed = EchoValue(accents);
  EXPECT_EQ(echoed.substr(0, 2 * kMaxEchoChars),
            accents.substr(0, 2 * kMaxEchoChars));
  EXPECT_THAT(echoed, HasSubstr("... (200 bytes)"));
}

}  // namespace
}  // namespace dserve::common
