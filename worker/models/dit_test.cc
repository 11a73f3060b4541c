#include "worker/models/dit.h"

#include <cmath>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include "worker/models/attention.h"
#include "worker/models/random_weights.h"

namespace dserve::models {
namespace {

using ::testing::HasSubstr;

PipelineConfig TinyConfig() {
  PipelineConfig c = DefaultModelConfig();
  c.dit.patch = {1, 2, 2};
  c.dit.dim = 48;
  c.dit.num_heads = 2;  // head_dim 24 → RoPE split 8/8/8
  c.dit.num_layers = 3;
  c.dit.ffn_dim = 64;
  c.text_encoder.dim = 16;
  c.text_encoder.num_heads = 2;
  c.text_encoder.ffn_dim = 32;
  c.text_encoder.max_len = 6;
  c.dit.text_dim = 16;
  c.dit.text_len = 6;
  return c;
}

struct Inputs {
  at::Tensor latents, timesteps, context;
};

Inputs MakeInputs(int64_t b, int64_t f, int64_t h, int64_t w) {
  at::manual_seed(11);
  return {at::randn({b, 5, f, h, w}), at::tensor({900.0f, 250.5f}).narrow(0, 0, b),
          at::randn({b, 6, 16})};
}

DiT MakeDiT(uint64_t seed) {
  PipelineConfig c = TinyConfig();
  absl::StatusOr<DiT> dit = DiT::Create(c.dit, RandomWeights(c, seed));
  EXPECT_TRUE(dit.ok()) << dit.status();
  return *std::move(dit);
}

TEST(DiTTest, OutputShapeAndDeterminism) {
  DiT dit = MakeDiT(1);
  Inputs in = MakeInputs(2, 2, 6, 8);
  at::Tensor out = dit.Forward(in.latents, in.timesteps, in.context);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 2, 6, 8}));
  EXPECT_FALSE(at::any(at::isnan(out)).item<bool>());
  EXPECT_TRUE(at::equal(out, MakeDiT(1).Forward(in.latents, in.timesteps,
                                                in.context)));
  EXPECT_FALSE(at::allclose(
      out, MakeDiT(2).Forward(in.latents, in.timesteps, in.context)));
}

TEST(DiTTest, OutputDependsOnEveryInput) {
  DiT dit = MakeDiT(1);
  Inputs in = MakeInputs(2, 1, 4, 4);
  at::Tensor out = dit.Forward(in.latents, in.timesteps, in.context);
  EXPECT_FALSE(at::allclose(
      out, dit.Forward(in.latents, in.timesteps + 100, in.context)));
  EXPECT_FALSE(at::allclose(
      out, dit.Forward(in.latents, in.timesteps, in.context * 2)));
  EXPECT_FALSE(at::allclose(
      out, dit.Forward(in.latents * 0.5, in.timesteps, in.context)));
}

TEST(DiTTest, BlockRangesCompose) {
  DiT dit = MakeDiT(3);
  Inputs in = MakeInputs(2, 1, 4, 6);
  DiTActivations whole = dit.Embed(in.latents, in.timesteps, in.context);
  dit.RunBlocks(whole, 0, 3);
  for (int k = 0; k <= 3; ++k) {
    DiTActivations split = dit.Embed(in.latents, in.timesteps, in.context);
    dit.RunBlocks(split, 0, k);
    dit.RunBlocks(split, k, 3);
    EXPECT_TRUE(at::allclose(split.x, whole.x, 1e-6, 1e-6)) << "k=" << k;
  }
  EXPECT_TRUE(at::equal(dit.Head(whole),
                        dit.Forward(in.latents, in.timesteps, in.context)));
}

TEST(DiTTest, CustomAttentionCoreIsUsedForSelfAttention) {
  DiT dit = MakeDiT(3);
  Inputs in = MakeInputs(1, 1, 4, 4);
  int calls = 0;
  AttentionCore counting = [&](const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, const at::Tensor& mask) {
    ++calls;
    return Attention(q, k, v, mask);
  };
  DiTActivations a = dit.Embed(in.latents, in.timesteps, in.context);
  dit.RunBlocks(a, 0, 3, counting);
  EXPECT_EQ(calls, 3);
  EXPECT_TRUE(at::allclose(dit.Head(a),
                           dit.Forward(in.latents, in.timesteps, in.context),
                           1e-6, 1e-6));
}

TEST(DiTTest, MaskedPaddingTokensDoNotChangeRealTokens) {
  // What sequence parallelism relies on: pad the sequence, mask the padded
  // keys, and the real tokens come out the same.
  DiT dit = MakeDiT(4);
  Inputs in = MakeInputs(2, 1, 4, 4);
  DiTActivations ref = dit.Embed(in.latents, in.timesteps, in.context);
  dit.RunBlocks(ref, 0, 3);
  DiTActivations pad = dit.Embed(in.latents, in.timesteps, in.context);
  const int64_t s = pad.x.size(1), extra = 3;
  pad.x = at::cat({pad.x, at::randn({2, extra, pad.x.size(2)})}, 1);
  pad.rope.cos = at::cat({pad.rope.cos, pad.rope.cos.narrow(0, 0, extra)});
  pad.rope.sin = at::cat({pad.rope.sin, pad.rope.sin.narrow(0, 0, extra)});
  pad.key_padding_mask = at::zeros({2, s + extra}, at::kBool);
  pad.key_padding_mask.narrow(1, s, extra).fill_(true);
  dit.RunBlocks(pad, 0, 3);
  EXPECT_TRUE(at::allclose(pad.x.narrow(1, 0, s), ref.x, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(dit.Head(pad), dit.Head(ref), 1e-5, 1e-5));
}

TEST(DiTTest, GradientsFlowToTheWeights) {
  // The default-model trainer differentiates through this forward.
  PipelineConfig c = TinyConfig();
  WeightMap w = RandomWeights(c, 5);
  for (const char* key : {"blocks.1.self_attn.q.weight", "head.head.weight",
                          "blocks.0.cross_attn.norm_k.weight"}) {
    w[key].requires_grad_(true);
  }
  absl::StatusOr<DiT> dit = DiT::Create(c.dit, w);
  ASSERT_TRUE(dit.ok());
  Inputs in = MakeInputs(2, 1, 4, 4);
  DiTActivations a = dit->Embed(in.latents, in.timesteps, in.context);
  a.key_padding_mask = at::zeros({2, a.x.size(1)}, at::kBool);
  a.key_padding_mask[1][3] = true;
  dit->RunBlocks(a, 0, 3);
  dit->Head(a).pow(2).sum().backward();
  for (const char* key : {"blocks.1.self_attn.q.weight", "head.head.weight",
                          "blocks.0.cross_attn.norm_k.weight"}) {
    ASSERT_TRUE(w[key].grad().defined()) << key;
    EXPECT_GT(w[key].grad().abs().sum().item<float>(), 0.0f) << key;
    EXPECT_FALSE(at::any(at::isnan(w[key].grad())).item<bool>()) << key;
  }
}

TEST(DiTTest, RopeMatchesDirectFormula) {
  // Wan's head_dim 128 split 44/42/42, on a small (2, 3, 4) grid.
  const int d = 128;
  TokenGrid grid{2, 3, 4};
  RopeTables rope = BuildRope(grid, d);
  ASSERT_EQ(rope.cos.sizes(), (std::vector<int64_t>{24, 64}));
  const int pairs_f = 22, pairs_h = 21;
  const int d_f = 44, d_hw = 42;
  at::manual_seed(5);
  at::Tensor x = at::randn({1, 24, 1, d});
  at::Tensor y = ApplyRope(x, rope);
  auto xa = x.accessor<float, 4>();
  auto ya = y.accessor<float, 4>();
  for (int f = 0; f < 2; ++f) {
    for (int h = 0; h < 3; ++h) {
      for (int w = 0; w < 4; ++w) {
        const int n = (f * 3 + h) * 4 + w;
        for (int j = 0; j < 64; ++j) {
          double pos, dim_axis, i;
          if (j < pairs_f) {
            pos = f, dim_axis = d_f, i = j;
          } else if (j < pairs_f + pairs_h) {
            pos = h, dim_axis = d_hw, i = j - pairs_f;
          } else {
            pos = w, dim_axis = d_hw, i = j - pairs_f - pairs_h;
          }
          const double angle = pos / std::pow(10000.0, 2 * i / dim_axis);
          const double c = std::cos(angle), s = std::sin(angle);
          const double x0 = xa[0][n][0][2 * j], x1 = xa[0][n][0][2 * j + 1];
          ASSERT_NEAR(rope.cos[n][j].item<float>(), c, 1e-6) << n << "," << j;
          ASSERT_NEAR(ya[0][n][0][2 * j], x0 * c - x1 * s, 1e-5);
          ASSERT_NEAR(ya[0][n][0][2 * j + 1], x0 * s + x1 * c, 1e-5);
        }
      }
    }
  }
}

TEST(DiTTest, SinusoidIsCosFirst) {
  at::Tensor t = at::tensor({0.0, 500.5, 999.0}, at::kDouble);
  at::Tensor e = SinusoidalEmbedding(t, 8);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{3, 8}));
  for (int b = 0; b < 3; ++b) {
    const double tb = t[b].item<double>();
    for (int i = 0; i < 4; ++i) {
      const double freq = std::pow(10000.0, -i / 4.0);
      EXPECT_NEAR(e[b][i].item<float>(), std::cos(tb * freq), 1e-6);
      EXPECT_NEAR(e[b][4 + i].item<float>(), std::sin(tb * freq), 1e-6);
    }
  }
}

TEST(DiTTest, PatchifyEqualsConv3d) {
  at::manual_seed(6);
  at::Tensor x = at::randn({2, 5, 2, 4, 6});
  at::Tensor w = at::randn({7, 5, 1, 2, 2});
  at::Tensor b = at::randn({7});
  at::Tensor conv = at::conv3d(x, w, b, {1, 2, 2}).flatten(2).transpose(1, 2);
  at::Tensor lin = at::linear(Patchify(x, {1, 2, 2}), w.flatten(1), b);
  EXPECT_TRUE(at::allclose(conv, lin, 1e-5, 1e-5));
}

TEST(DiTTest, UnpatchifyPlacesChannelFastestPatchValues) {
  // tokens[b, (f,h,w), (p,q,r,c)] → out[b, c, f·pt+p, h·ph+q, w·pw+r].
  TokenGrid grid{1, 2, 3};
  const int c = 3;
  at::Tensor tokens = at::arange(2 * 6 * 4 * c, at::kFloat).view({2, 6, 4 * c});
  at::Tensor out = Unpatchify(tokens, grid, {1, 2, 2}, c);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 1, 4, 6}));
  for (int b = 0; b < 2; ++b)
    for (int h = 0; h < 2; ++h)
      for (int w = 0; w < 3; ++w)
        for (int q = 0; q < 2; ++q)
          for (int r = 0; r < 2; ++r)
            for (int ch = 0; ch < c; ++ch) {
              const int n = h * 3 + w;
              const int k = (q * 2 + r) * c + ch;
              ASSERT_EQ(out[b][ch][0][h * 2 + q][w * 2 + r].item<float>(),
                        tokens[b][n][k].item<float>());
            }
}

TEST(DiTTest, CoordinatePlanesSpanMinusOneToOne) {
  at::Tensor x = at::zeros({1, 3, 1, 2, 4});
  at::Tensor y = AppendCoordinatePlanes(x);
  ASSERT_EQ(y.size(1), 5);
  EXPECT_FLOAT_EQ(y[0][3][0][0][0].item<float>(), -0.5f);  // y, row 0 of 2
  EXPECT_FLOAT_EQ(y[0][3][0][1][3].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(y[0][4][0][0][0].item<float>(), -0.75f);  // x, col 0 of 4
  EXPECT_FLOAT_EQ(y[0][4][0][1][3].item<float>(), 0.75f);
}

TEST(DiTTest, CreateNamesMissingAndMisShapedKeys) {
  PipelineConfig c = TinyConfig();
  WeightMap w = RandomWeights(c, 0);
  w.erase("blocks.2.cross_attn.norm_k.weight");
  absl::StatusOr<DiT> missing = DiT::Create(c.dit, w);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("blocks.2.cross_attn.norm_k.weight"));
  w = RandomWeights(c, 0);
  w["head.head.weight"] = at::zeros({5, 48});
  absl::StatusOr<DiT> shaped = DiT::Create(c.dit, w);
  EXPECT_THAT(shaped.status().message(), HasSubstr("head.head.weight"));
  EXPECT_THAT(shaped.status().message(), HasSubstr("[12, 48]"));
}

TEST(DiTTest, WeightNamesAreWans) {
  DiTConfig c = TinyConfig().dit;
  int per_block = 0;
  for (const auto& [key, shape] : DiTWeightShapes(c)) {
    if (key.rfind("blocks.0.", 0) == 0) ++per_block;
  }
  EXPECT_EQ(per_block, 27);  // as in the Wan checkpoints
  const auto shapes = DiTWeightShapes(c);
  EXPECT_EQ(shapes.front().first, "patch_embedding.weight");
  EXPECT_EQ(shapes.back().first, "head.head.bias");
}

}  // namespace
}  // namespace dserve::models
