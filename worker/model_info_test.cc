#include "worker/model_info.h"

#include "gtest/gtest.h"

namespace dserve::worker {
namespace {

TEST(ModelInfoTest, CopiesEveryFieldOfTheDefaultConfig) {
  const models::PipelineConfig config = models::DefaultModelConfig();
  const dserve::v1::ModelInfo info = ModelInfoFromConfig(config, true);
  EXPECT_EQ(info.name(), config.name);
  EXPECT_FALSE(info.name().empty());
  EXPECT_EQ(info.description(), config.description);
  EXPECT_TRUE(info.is_default());
  EXPECT_EQ(info.default_width(), config.default_width);
  EXPECT_EQ(info.default_height(), config.default_height);
  EXPECT_EQ(info.max_width(), config.max_width);
  EXPECT_EQ(info.max_height(), config.max_height);
  EXPECT_EQ(info.size_step(), config.size_step);
  EXPECT_EQ(info.max_frames(), config.max_frames);
  EXPECT_EQ(info.default_steps(), config.default_steps);
  EXPECT_FLOAT_EQ(info.default_guidance_scale(), config.default_guidance);
  EXPECT_FLOAT_EQ(info.default_flow_shift(), config.default_shift);
  EXPECT_EQ(info.prediction_type(), config.prediction_type);
  EXPECT_EQ(info.dim(), config.dit.dim);
  EXPECT_EQ(info.num_heads(), config.dit.num_heads);
  EXPECT_EQ(info.num_layers(), config.dit.num_layers);
  ASSERT_EQ(info.vocabulary_size(), static_cast<int>(config.vocabulary.size()));
  for (int i = 0; i < info.vocabulary_size(); ++i) {
    EXPECT_EQ(info.vocabulary(i), config.vocabulary[i]);
  }
}

TEST(ModelInfoTest, IsDefaultFollowsTheArgument) {
  models::PipelineConfig config = models::DefaultModelConfig();
  config.name = "other";
  const dserve::v1::ModelInfo info = ModelInfoFromConfig(config, false);
  EXPECT_FALSE(info.is_default());
  EXPECT_EQ(info.name(), "other");
}

}  // namespace
}  // namespace dserve::worker
