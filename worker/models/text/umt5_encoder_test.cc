#include "worker/models/text/umt5_encoder.h"

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dserve::models {
namespace {

using ::testing::HasSubstr;

// The reference's t5 case config.
Umt5Config TinyConfig() {
  Umt5Config c;
  c.vocab = 300;
  c.dim = 32;
  c.num_heads = 4;
  c.head_dim = 8;
  c.ffn_dim = 48;
  c.num_layers = 2;
  return c;
}

WeightMap RandomWeights(const Umt5Config& c, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  WeightMap w;
  for (const auto& [key, shape] : Umt5WeightShapes(c)) {
    at::Tensor t = at::randn(shape, gen, at::kFloat);
    if (key.find("norm") != std::string::npos) t = t * 0.2 + 1.0;
    if (shape.size() == 2 && key.find("embedding") == std::string::npos) {
      t = t / std::sqrt(static_cast<double>(shape[1]));
    }
    w[key] = t;
  }
  return w;
}

std::vector<int64_t> Ids(int n, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor t = at::randint(2, vocab, {n}, gen, at::kLong);
  std::vector<int64_t> ids(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
  ids.back() = 1;
  return ids;
}

TEST(Umt5EncoderTest, BucketTableOfTheReference) {
  // rel = key - query in [-200, 200].
  const std::vector<int64_t> b = Umt5RelativeBuckets(-200, 200, 32, 128);
  auto bucket = [&](int64_t rel) { return b[rel + 200]; };
  EXPECT_EQ(bucket(0), 0);
  for (int r = 1; r < 8; ++r) {
    EXPECT_EQ(bucket(r), 16 + r) << r;
    EXPECT_EQ(bucket(-r), r) << r;
  }
  // |rel| -> f: 8-11 8, 12-15 9, 16-22 10, 23-31 11, 32-45 12, 46-63 13,
  // 64-90 14, >= 91 15.
  const std::vector<std::pair<int, int>> ranges = {
      {8, 8}, {12, 9}, {16, 10}, {23, 11}, {32, 12}, {46, 13}, {64, 14},
      {91, 15}};
  for (int n = 8; n <= 200; ++n) {
    int want = 0;
    for (const auto& [start, f] : ranges) {
      if (n >= start) want = f;
    }
    EXPECT_EQ(bucket(-n), want) << "rel " << -n;
    EXPECT_EQ(bucket(n), 16 + want) << "rel " << n;
  }
}

TEST(Umt5EncoderTest, InfersConfigFromShapes) {
  const Umt5Config c = TinyConfig();
  auto inferred = InferUmt5Config(RandomWeights(c, 1));
  ASSERT_TRUE(inferred.ok()) << inferred.status();
  EXPECT_EQ(inferred->vocab, 300);
  EXPECT_EQ(inferred->dim, 32);
  EXPECT_EQ(inferred->num_heads, 4);
  EXPECT_EQ(inferred->head_dim, 8);
  EXPECT_EQ(inferred->ffn_dim, 48);
  EXPECT_EQ(inferred->num_layers, 2);
  EXPECT_EQ(inferred->num_buckets, 32);
  EXPECT_EQ(inferred->max_distance, 128);
  // umT5-XXL: 24 blocks of 10 tensors + embedding + final norm = 242.
  EXPECT_EQ(Umt5WeightShapes(Umt5Config{}).size(), 242u);
}

TEST(Umt5EncoderTest, ErrorsNameTheKey) {
  const Umt5Config c = TinyConfig();
  WeightMap missing = RandomWeights(c, 1);
  missing.erase("blocks.1.ffn.fc2.weight");
  auto a = Umt5Encoder::Create(missing);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(std::string(a.status().message()),
              HasSubstr("blocks.1.ffn.fc2.weight"));

  WeightMap misshaped = RandomWeights(c, 1);
  misshaped["blocks.0.attn.k.weight"] = at::zeros({16, 32});
  auto b = Umt5Encoder::Create(misshaped);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("blocks.0.attn.k.weight has shape [16, 32], "
                        "expected [32, 32]"));

  WeightMap gap = RandomWeights(c, 1);
  gap["blocks.5.norm1.weight"] = at::ones({32});
  auto d = Umt5Encoder::Create(gap);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("0..N-1"));

  auto no_embedding = InferUmt5Config({});
  ASSERT_FALSE(no_embedding.ok());
  EXPECT_THAT(std::string(no_embedding.status().message()),
              HasSubstr("token_embedding.weight"));
}

TEST(Umt5EncoderTest, ContextIsEachPromptAloneThenZeros) {
  const Umt5Config c = TinyConfig();
  auto enc = Umt5Encoder::Create(RandomWeights(c, 2));
  ASSERT_TRUE(enc.ok()) << enc.status();
  const std::vector<int64_t> a = Ids(100, c.vocab, 3), b = Ids(5, c.vocab, 4);
  std::vector<at::Tensor> unpadded;
  auto ctx = (*enc)->EncodeContext({a, b}, 128, &unpadded);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  EXPECT_EQ(ctx->sizes(), at::IntArrayRef({2, 128, 32}));
  EXPECT_EQ(ctx->scalar_type(), at::kFloat);
  ASSERT_EQ(unpadded.size(), 2u);
  EXPECT_EQ(unpadded[0].size(0), 100);
  EXPECT_EQ(unpadded[1].size(0), 5);
  EXPECT_EQ((*ctx)[0].narrow(0, 100, 28).abs().max().item<float>(), 0.0f);
  EXPECT_EQ((*ctx)[1].narrow(0, 5, 123).abs().max().item<float>(), 0.0f);
  EXPECT_GT((*ctx)[1].narrow(0, 0, 5).abs().min().item<float>(), 0.0f);
  auto alone = (*enc)->Encode(b);
  ASSERT_TRUE(alone.ok());
  EXPECT_TRUE(at::equal(*alone, unpadded[1]));
  // The output is RMS-normalised (times the final gain): rows are O(1).
  const float rms = unpadded[0].pow(2).mean().sqrt().item<float>();
  EXPECT_GT(rms, 0.3f);
  EXPECT_LT(rms, 3.0f);
}

TEST(Umt5EncoderTest, RejectsBadInputs) {
  const Umt5Config c = TinyConfig();
  auto enc = Umt5Encoder::Create(RandomWeights(c, 2));
  ASSERT_TRUE(enc.ok());
  auto too_long = (*enc)->EncodeContext({Ids(20, c.vocab, 1)}, 16);
  ASSERT_FALSE(too_long.ok());
  EXPECT_THAT(std::string(too_long.status().message()),
              HasSubstr("more than text_len 16"));
  auto bad_id = (*enc)->Encode({5, 300, 1});
  ASSERT_FALSE(bad_id.ok());
  EXPECT_THAT(std::string(bad_id.status().message()),
              HasSubstr("token 1 has id 300"));
  EXPECT_FALSE((*enc)->Encode({}).ok());
}

TEST(Umt5EncoderTest, RelativeBiasMakesPositionMatter) {
  // Without absolute positions, only the bias distinguishes orders: the
  // same tokens reversed must give different (not permuted) rows.
  const Umt5Config c = TinyConfig();
  auto enc = Umt5Encoder::Create(RandomWeights(c, 5));
  ASSERT_TRUE(enc.ok());
  auto fwd = (*enc)->Encode({7, 8, 9, 1});
  auto rev = (*enc)->Encode({1, 9, 8, 7});
  ASSERT_TRUE(fwd.ok() && rev.ok());
  EXPECT_GT((*fwd - rev->flip({0})).abs().max().item<float>(), 1e-3f);
}

TEST(Umt5EncoderTest, Bf16PathFollowsFp32) {
  const Umt5Config c = TinyConfig();
  const WeightMap w = RandomWeights(c, 6);
  WeightMap w_bf16;
  for (const auto& [k, t] : w) w_bf16[k] = t.to(at::kBFloat16);
  auto fp32 = Umt5Encoder::Create(w_bf16, {at::kCPU, at::kFloat});
  auto bf16 = Umt5Encoder::Create(w_bf16, {at::kCPU, at::kBFloat16});
  ASSERT_TRUE(fp32.ok() && bf16.ok());
  const std::vector<int64_t> ids = Ids(40, c.vocab, 7);
  auto a = (*fp32)->Encode(ids);
  auto b = (*bf16)->Encode(ids);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->scalar_type(), at::kFloat);
  const float rel = ((*a - *b).abs().max() / a->abs().max()).item<float>();
  EXPECT_LT(rel, 5e-2f);
  EXPECT_GT(rel, 0.0f);  // it really ran in bf16
}

}  // namespace
}  // namespace dserve::models
