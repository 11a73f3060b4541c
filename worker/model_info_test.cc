#include "worker/model_info.h"

#include "gtest/gtest.h"
#include "parallel/device_mesh.h"
#include "worker/models/dit_share.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"

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

// Parameters and bytes per rank: the DiT's share per rank of the mesh,
// plus the text encoder and the decoder every rank holds here.
TEST(ModelInfoTest, WeightSizesPerRankOfTheMesh) {
  const models::PipelineConfig config = models::DefaultModelConfig();
  const models::WeightMap weights = models::RandomWeights(config, 1);
  auto pipeline = models::Pipeline::Create(config, weights);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  int64_t text_params = 0, all_params = 0;
  for (const auto& [key, t] : weights) {
    all_params += t.numel();
    if (key.rfind("text_encoder.", 0) == 0) text_params += t.numel();
  }
  auto dit_bytes = [&](const models::DiTShare& share) {
    auto size = models::DiTShareSize(config.dit, share, at::kFloat);
    EXPECT_TRUE(size.ok()) << size.status();
    return size.ok() ? size->bytes : -1;
  };

  auto mesh = [](const char* spec) {
    absl::StatusOr<parallel::MeshDegrees> d = parallel::ParseMeshSpec(spec);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.value_or(parallel::MeshDegrees{});
  };
  dserve::v1::ModelInfo one = ModelInfoFromConfig(config, true);
  ASSERT_TRUE(AddWeightSizes(**pipeline, mesh(""), one).ok());
  EXPECT_EQ(one.parameter_count(), all_params);
  ASSERT_EQ(one.dit_bytes_per_rank_size(), 1);
  EXPECT_EQ(one.dit_bytes_per_rank(0), dit_bytes({}));
  EXPECT_EQ(one.weight_bytes_per_rank(0), dit_bytes({}) + text_params * 4);

  dserve::v1::ModelInfo tp = ModelInfoFromConfig(config, true);
  ASSERT_TRUE(AddWeightSizes(**pipeline, mesh("tp=2"), tp).ok());
  ASSERT_EQ(tp.dit_bytes_per_rank_size(), 2);
  EXPECT_EQ(tp.dit_bytes_per_rank(0), dit_bytes({0, 1, 0, 2}));
  EXPECT_EQ(tp.dit_bytes_per_rank(1), dit_bytes({0, 1, 1, 2}));
  EXPECT_LT(tp.dit_bytes_per_rank(0), dit_bytes({}));

  // cfg replicates: ranks (cfg, pp) = (0,0) (0,1) (1,0) (1,1).
  dserve::v1::ModelInfo pp = ModelInfoFromConfig(config, true);
  ASSERT_TRUE(AddWeightSizes(**pipeline, mesh("dp=2,cfg=2,pp=2"), pp).ok());
  ASSERT_EQ(pp.weight_bytes_per_rank_size(), 4);
  EXPECT_EQ(pp.dit_bytes_per_rank(0), dit_bytes({0, 2, 0, 1}));
  EXPECT_EQ(pp.dit_bytes_per_rank(1), dit_bytes({1, 2, 0, 1}));
  EXPECT_EQ(pp.dit_bytes_per_rank(2), pp.dit_bytes_per_rank(0));
  EXPECT_EQ(pp.weight_bytes_per_rank(3),
            pp.dit_bytes_per_rank(3) + text_params * 4);

  EXPECT_FALSE(AddWeightSizes(**pipeline, mesh("tp=7"), one).ok());
}

}  // namespace
}  // namespace dserve::worker
