#include "training/trainable_text_encoder.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include "worker/models/random_weights.h"
#include "worker/models/text_encoder.h"

namespace dserve::training {
namespace {

TEST(TrainableTextEncoderTest, MatchesTheServingEncoder) {
  const models::PipelineConfig config = models::DefaultModelConfig();
  const models::WeightMap w = models::RandomWeights(config, 3);
  const std::vector<std::string> prompts = {
      "a red circle on a blue background, top left", "", "zebra square",
      "center"};
  absl::StatusOr<models::TextEncoder> enc =
      models::TextEncoder::Create(config, w);
  ASSERT_TRUE(enc.ok()) << enc.status();
  absl::StatusOr<models::TextEncoding> want = enc->Encode(prompts);
  ASSERT_TRUE(want.ok()) << want.status();
  absl::StatusOr<at::Tensor> got = TrainableTextEncode(config, w, prompts);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(at::allclose(*got, want->embeddings, 1e-5, 1e-5))
      << (*got - want->embeddings).abs().max().item<float>();
}

TEST(TrainableTextEncoderTest, GradientsReachTheWeights) {
  const models::PipelineConfig config = models::DefaultModelConfig();
  models::WeightMap w = models::RandomWeights(config, 4);
  for (auto& [k, t] : w) t.requires_grad_(true);
  absl::StatusOr<at::Tensor> out =
      TrainableTextEncode(config, w, {"a green triangle", ""});
  ASSERT_TRUE(out.ok()) << out.status();
  out->pow(2).sum().backward();
  const at::Tensor g = w.at("text_encoder.blocks.0.attn.q.weight").grad();
  ASSERT_TRUE(g.defined());
  EXPECT_TRUE(at::isfinite(g).all().item<bool>());
  EXPECT_GT(g.abs().sum().item<float>(), 0.0f);
}

TEST(TrainableTextEncoderTest, RejectsTooLongPrompts) {
  models::PipelineConfig config = models::DefaultModelConfig();
  const models::WeightMap w = models::RandomWeights(config, 5);
  std::string long_prompt;
  for (int i = 0; i < config.text_encoder.max_len + 1; ++i) long_prompt += "a ";
  EXPECT_FALSE(TrainableTextEncode(config, w, {long_prompt}).ok());
}

}  // namespace
}  // namespace dserve::training
