#include "worker/models/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dserve::models {
namespace {

using ::testing::HasSubstr;

TEST(ModelConfigTest, DefaultIsValidAndSmall) {
  PipelineConfig c = DefaultModelConfig();
  ASSERT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
  EXPECT_EQ(c.dit.head_dim(), 32);
  EXPECT_EQ(c.dit.in_channels, 5);
  EXPECT_EQ(c.size_step, 4);
  EXPECT_EQ(c.vocabulary[0], "<pad>");
  EXPECT_EQ(c.vocabulary[1], "<unk>");
  EXPECT_EQ(c.text_encoder.vocab_size, static_cast<int>(c.vocabulary.size()));
}

TEST(ModelConfigTest, JsonRoundTrip) {
  PipelineConfig c = DefaultModelConfig();
  c.default_shift = 3.0f;
  c.prediction_type = "x0";
  absl::StatusOr<PipelineConfig> back = ConfigFromJson(ConfigToJson(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ConfigToJson(*back), ConfigToJson(c));
  EXPECT_EQ(back->prediction_type, "x0");
  EXPECT_EQ(back->dit.patch, c.dit.patch);
  EXPECT_FLOAT_EQ(back->default_shift, 3.0f);
}

TEST(ModelConfigTest, RejectsBadPredictionType) {
  PipelineConfig c = DefaultModelConfig();
  c.prediction_type = "epsilon";
  absl::Status st = ValidateConfig(c);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("prediction_type"));
  EXPECT_THAT(st.message(), HasSubstr("epsilon"));
}

TEST(ModelConfigTest, RejectsHeadsNotDividingDim) {
  PipelineConfig c = DefaultModelConfig();
  c.dit.num_heads = 5;
  absl::Status st = ValidateConfig(c);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("dit.dim"));
}

TEST(ModelConfigTest, ParseErrorsNameTheField) {
  EXPECT_EQ(ConfigFromJson("{not json").status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<PipelineConfig> missing = ConfigFromJson("{\"name\": \"x\"}");
  EXPECT_THAT(missing.status().message(), HasSubstr("dit"));
  std::string text = ConfigToJson(DefaultModelConfig());
  const std::string from = "\"num_layers\": 4";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.find(from), from.size(), "\"num_layers\": \"four\"");
  absl::StatusOr<PipelineConfig> typed = ConfigFromJson(text);
  EXPECT_THAT(typed.status().message(), HasSubstr("dit.num_layers"));
}

}  // namespace
}  // namespace dserve::models
