#include "worker/models/checkpoint/wan_key_maps.h"

#include <set>
#include <string>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "worker/models/checkpoint/wan_component_shapes.h"
#include "worker/models/dit.h"

namespace dserve::models::checkpoint {
namespace {

using ::testing::HasSubstr;

struct Pair {
  WanComponent component;
  const char* wan;
  const char* diffusers;
};

// From wan21_pipeline.md §1-§3.
constexpr Pair kKnown[] = {
    {WanComponent::kDiT, "patch_embedding.weight", "patch_embedding.weight"},
    {WanComponent::kDiT, "text_embedding.2.bias",
     "condition_embedder.text_embedder.linear_2.bias"},
    {WanComponent::kDiT, "time_embedding.0.weight",
     "condition_embedder.time_embedder.linear_1.weight"},
    {WanComponent::kDiT, "time_projection.1.weight",
     "condition_embedder.time_proj.weight"},
    {WanComponent::kDiT, "head.modulation", "scale_shift_table"},
    {WanComponent::kDiT, "head.head.bias", "proj_out.bias"},
    {WanComponent::kDiT, "blocks.12.modulation", "blocks.12.scale_shift_table"},
    {WanComponent::kDiT, "blocks.0.self_attn.o.bias",
     "blocks.0.attn1.to_out.0.bias"},
    {WanComponent::kDiT, "blocks.1.cross_attn.k.weight",
     "blocks.1.attn2.to_k.weight"},
    {WanComponent::kDiT, "blocks.1.cross_attn.norm_q.weight",
     "blocks.1.attn2.norm_q.weight"},
    {WanComponent::kDiT, "blocks.3.norm3.weight", "blocks.3.norm2.weight"},
    {WanComponent::kDiT, "blocks.3.norm3.bias", "blocks.3.norm2.bias"},
    {WanComponent::kDiT, "blocks.29.ffn.0.weight",
     "blocks.29.ffn.net.0.proj.weight"},
    {WanComponent::kDiT, "blocks.29.ffn.2.bias", "blocks.29.ffn.net.2.bias"},
    {WanComponent::kT5, "token_embedding.weight", "shared.weight"},
    {WanComponent::kT5, "norm.weight", "encoder.final_layer_norm.weight"},
    {WanComponent::kT5, "blocks.7.norm1.weight",
     "encoder.block.7.layer.0.layer_norm.weight"},
    {WanComponent::kT5, "blocks.7.attn.o.weight",
     "encoder.block.7.layer.0.SelfAttention.o.weight"},
    {WanComponent::kT5, "blocks.0.pos_embedding.embedding.weight",
     "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"},
    {WanComponent::kT5, "blocks.23.norm2.weight",
     "encoder.block.23.layer.1.layer_norm.weight"},
    {WanComponent::kT5, "blocks.5.ffn.gate.0.weight",
     "encoder.block.5.layer.1.DenseReluDense.wi_0.weight"},
    {WanComponent::kT5, "blocks.5.ffn.fc1.weight",
     "encoder.block.5.layer.1.DenseReluDense.wi_1.weight"},
    {WanComponent::kT5, "blocks.5.ffn.fc2.weight",
     "encoder.block.5.layer.1.DenseReluDense.wo.weight"},
    {WanComponent::kVae, "conv1.weight", "quant_conv.weight"},
    {WanComponent::kVae, "conv2.bias", "post_quant_conv.bias"},
    {WanComponent::kVae, "encoder.conv1.bias", "encoder.conv_in.bias"},
    {WanComponent::kVae, "decoder.head.0.gamma", "decoder.norm_out.gamma"},
    {WanComponent::kVae, "decoder.head.2.weight", "decoder.conv_out.weight"},
    {WanComponent::kVae, "decoder.middle.1.to_qkv.weight",
     "decoder.mid_block.attentions.0.to_qkv.weight"},
    {WanComponent::kVae, "decoder.middle.1.norm.gamma",
     "decoder.mid_block.attentions.0.norm.gamma"},
    {WanComponent::kVae, "encoder.middle.2.residual.3.gamma",
     "encoder.mid_block.resnets.1.norm2.gamma"},
    {WanComponent::kVae, "decoder.middle.0.residual.6.bias",
     "decoder.mid_block.resnets.0.conv2.bias"},
    {WanComponent::kVae, "encoder.downsamples.3.residual.0.gamma",
     "encoder.down_blocks.3.norm1.gamma"},
    {WanComponent::kVae, "encoder.downsamples.3.shortcut.weight",
     "encoder.down_blocks.3.conv_shortcut.weight"},
    {WanComponent::kVae, "encoder.downsamples.5.time_conv.bias",
     "encoder.down_blocks.5.time_conv.bias"},
    {WanComponent::kVae, "encoder.downsamples.2.resample.1.weight",
     "encoder.down_blocks.2.resample.1.weight"},
    {WanComponent::kVae, "decoder.upsamples.2.residual.2.weight",
     "decoder.up_blocks.0.resnets.2.conv1.weight"},
    {WanComponent::kVae, "decoder.upsamples.4.shortcut.weight",
     "decoder.up_blocks.1.resnets.0.conv_shortcut.weight"},
    {WanComponent::kVae, "decoder.upsamples.7.time_conv.weight",
     "decoder.up_blocks.1.upsamplers.0.time_conv.weight"},
    {WanComponent::kVae, "decoder.upsamples.11.resample.1.bias",
     "decoder.up_blocks.2.upsamplers.0.resample.1.bias"},
    {WanComponent::kVae, "decoder.upsamples.14.residual.6.weight",
     "decoder.up_blocks.3.resnets.2.conv2.weight"},
};

TEST(WanKeyMapsTest, KnownPairsBothWays) {
  for (const Pair& p : kKnown) {
    absl::StatusOr<std::string> d = DiffusersKeyFromWan(p.component, p.wan);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(*d, p.diffusers) << p.wan;
    absl::StatusOr<std::string> w = WanKeyFromDiffusers(p.component, p.diffusers);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(*w, p.wan) << p.diffusers;
  }
}

void ExpectRoundTrip(WanComponent component, const ShapeList& shapes) {
  std::set<std::string> seen;
  for (const auto& [key, shape] : shapes) {
    absl::StatusOr<std::string> d = DiffusersKeyFromWan(component, key);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_TRUE(seen.insert(*d).second) << "two keys map to " << *d;
    absl::StatusOr<std::string> back = WanKeyFromDiffusers(component, *d);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, key);
  }
}

TEST(WanKeyMapsTest, EveryKeyOfEveryComponentRoundTrips) {
  DiTConfig dit;  // 1.3B
  ExpectRoundTrip(WanComponent::kDiT, DiTWeightShapes(dit));
  ExpectRoundTrip(WanComponent::kT5,
                  T5WeightShapes({256384, 4096, 64, 64, 10240, 24, 32}));
  ExpectRoundTrip(WanComponent::kVae, VaeWeightShapes({96, 16}));
  EXPECT_EQ(VaeWeightShapes({96, 16}).size(), 194u);  // as Wan2.1_VAE.pth
  EXPECT_EQ(T5WeightShapes({256384, 4096, 64, 64, 10240, 24, 32}).size(),
            242u);  // as models_t5_umt5-xxl-enc-bf16.pth
}

TEST(WanKeyMapsTest, UnknownKeysAreErrorsNamingTheKey) {
  struct Bad {
    WanComponent component;
    bool from_diffusers;
    const char* key;
  } cases[] = {
      {WanComponent::kDiT, false, "blocks.0.norm1.weight"},  // no weight in Wan
      {WanComponent::kDiT, true, "blocks.0.norm3.weight"},
      {WanComponent::kDiT, true, "blocks.x.attn1.to_q.weight"},
      {WanComponent::kDiT, true, "condition_embedder.image_embedder.norm1.weight"},
      {WanComponent::kT5, true, "decoder.block.0.layer.0.layer_norm.weight"},
      {WanComponent::kT5, false, "blocks.0.attn.q.bias"},
      {WanComponent::kVae, false, "decoder.upsamples.3.residual.0.gamma"},
      {WanComponent::kVae, true, "decoder.up_blocks.0.upsamplers.1.time_conv.weight"},
      {WanComponent::kVae, true, "encoder.mid_block.resnets.2.norm1.gamma"},
      {WanComponent::kVae, false, "encoder.downsamples.01.residual.2.weight"},
      {WanComponent::kVae, true, "something"},
  };
  for (const Bad& b : cases) {
    absl::StatusOr<std::string> r =
        b.from_diffusers ? WanKeyFromDiffusers(b.component, b.key)
                         : DiffusersKeyFromWan(b.component, b.key);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << b.key;
    EXPECT_THAT(r.status().message(), HasSubstr(b.key));
  }
}

TEST(WanKeyMapsTest, TiedT5AliasIsDroppedOrUsed) {
  WeightMap w;
  w["shared.weight"] = at::ones({5, 2});
  w["encoder.embed_tokens.weight"] = w["shared.weight"];
  w["encoder.final_layer_norm.weight"] = at::ones({2});
  absl::StatusOr<WeightMap> out = WanWeightsFromDiffusers(WanComponent::kT5, w);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->size(), 2u);
  EXPECT_TRUE(out->count("token_embedding.weight"));
  // Only the alias: it becomes the embedding.
  w.erase("shared.weight");
  out = WanWeightsFromDiffusers(WanComponent::kT5, w);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->count("token_embedding.weight"));
  // A mismatched alias is an error.
  w["shared.weight"] = at::ones({4, 2});
  EXPECT_FALSE(WanWeightsFromDiffusers(WanComponent::kT5, w).ok());
}

TEST(WanKeyMapsTest, WeightMapsRoundTripSharingTensors) {
  WeightMap wan;
  for (const auto& [key, shape] : VaeWeightShapes({8, 16})) {
    wan[key] = at::zeros(shape);
  }
  absl::StatusOr<WeightMap> d = DiffusersWeightsFromWan(WanComponent::kVae, wan);
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<WeightMap> back = WanWeightsFromDiffusers(WanComponent::kVae, *d);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), wan.size());
  for (const auto& [key, t] : wan) {
    EXPECT_TRUE(back->at(key).is_same(t)) << key;
  }
}

}  // namespace
}  // namespace dserve::models::checkpoint
