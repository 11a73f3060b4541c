#include "worker/models/text_encoder.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include "worker/models/random_weights.h"

namespace dserve::models {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(WordTokenizerTest, LowercasesSplitsAndReportsUnknownWords) {
  WordTokenizer tok({"<pad>", "<unk>", "red", "circle", "top", "left"});
  TokenizedText t = tok.Encode("A RED circle, top-left; Zebra!! 42 red");
  EXPECT_THAT(t.ids, ElementsAre(1, 2, 3, 4, 5, 1, 2));
  EXPECT_THAT(t.unknown_words, ElementsAre("a", "zebra"));
  EXPECT_TRUE(tok.Encode("  ,.; 7 ").ids.empty());
}

TEST(WordTokenizerTest, Utf8WordsStayWhole) {
  WordTokenizer tok({"<pad>", "<unk>", "red"});
  TokenizedText t = tok.Encode("rot\xc3\xa9 red");
  EXPECT_THAT(t.ids, ElementsAre(1, 2));
  EXPECT_THAT(t.unknown_words, ElementsAre("rot\xc3\xa9"));
}

class TextEncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = DefaultModelConfig();
    absl::StatusOr<TextEncoder> enc =
        TextEncoder::Create(config_, RandomWeights(config_, 3));
    ASSERT_TRUE(enc.ok()) << enc.status();
    encoder_ = std::make_unique<TextEncoder>(*std::move(enc));
  }
  PipelineConfig config_;
  std::unique_ptr<TextEncoder> encoder_;
};

TEST_F(TextEncoderTest, ShapesLengthsAndZeroPadding) {
  absl::StatusOr<TextEncoding> e =
      encoder_->Encode({"a red circle", "", "blue square at the top"});
  ASSERT_TRUE(e.ok()) << e.status();
  // The default model reads 16 words (DefaultModelConfig).
  EXPECT_EQ(e->embeddings.sizes(), (std::vector<int64_t>{3, 16, 128}));
  EXPECT_THAT(e->lengths, ElementsAre(3, 0, 5));
  EXPECT_TRUE(at::all(e->embeddings[0].narrow(0, 3, 13) == 0).item<bool>());
  EXPECT_TRUE(at::all(e->embeddings[1] == 0).item<bool>());
  EXPECT_GT(e->embeddings[0][0].abs().sum().item<float>(), 1.0f);
  EXPECT_FALSE(at::any(at::isnan(e->embeddings)).item<bool>());
}

TEST_F(TextEncoderTest, PromptsAreIndependentOfBatchAndDistinct) {
  absl::StatusOr<TextEncoding> alone = encoder_->Encode({"red circle"});
  absl::StatusOr<TextEncoding> batch =
      encoder_->Encode({"green triangle on the left", "red circle"});
  ASSERT_TRUE(alone.ok() && batch.ok());
  EXPECT_TRUE(at::allclose(alone->embeddings[0], batch->embeddings[1], 1e-5,
                           1e-5));
  EXPECT_FALSE(at::allclose(alone->embeddings[0], batch->embeddings[0]));
  // Word order matters (positions).
  absl::StatusOr<TextEncoding> swapped = encoder_->Encode({"circle red"});
  EXPECT_FALSE(at::allclose(alone->embeddings, swapped->embeddings));
}

TEST_F(TextEncoderTest, TooManyWordsNamesTheField) {
  std::string long_prompt;
  for (int i = 0; i < 17; ++i) long_prompt += "red ";
  absl::StatusOr<TextEncoding> e =
      encoder_->Encode({long_prompt}, "negative_prompt");
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(e.status().message(), HasSubstr("negative_prompt"));
  EXPECT_THAT(e.status().message(), HasSubstr("17"));
  EXPECT_THAT(e.status().message(), HasSubstr("16"));
}

TEST_F(TextEncoderTest, CreateNamesMissingKey) {
  WeightMap w = RandomWeights(config_, 3);
  w.erase("text_encoder.blocks.1.attn.v.bias");
  absl::StatusOr<TextEncoder> enc = TextEncoder::Create(config_, w);
  EXPECT_EQ(enc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(enc.status().message(),
              HasSubstr("text_encoder.blocks.1.attn.v.bias"));
}

}  // namespace
}  // namespace dserve::models
