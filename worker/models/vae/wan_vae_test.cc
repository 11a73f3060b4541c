#include "worker/models/vae/wan_vae.h"

#include <cstdio>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include "worker/models/model_config.h"
#include "worker/models/vae/testing/random_vae_weights.h"
#include "worker/models/vae/wan_vae_config.h"

namespace dserve::models {
namespace {

using ::testing::HasSubstr;

double MaxRel(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() /
         b.abs().max().item<double>();
}

// One VAE for the whole suite (weights and model are immutable).
const WeightMap& TinyWeights() {
  static const WeightMap* w =
      new WeightMap(RandomWanVaeWeights(TinyWanVaeConfig(), 7));
  return *w;
}

const WanVae& TinyVae() {
  static const WanVae* vae = [] {
    absl::StatusOr<WanVae> v = WanVae::Create(TinyWeights());
    EXPECT_TRUE(v.ok()) << v.status();
    return new WanVae(*std::move(v));
  }();
  return *vae;
}

at::Tensor Latents(int64_t t) {
  at::manual_seed(5);
  return at::randn({1, 16, t, 4, 6});
}

TEST(WanVaeConfigTest, InfersTinyConfigFromShapes) {
  absl::StatusOr<WanVaeConfig> c = InferWanVaeConfig(TinyWeights());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->base_dim, 8);
  EXPECT_EQ(c->z_dim, 16);
  EXPECT_EQ(c->dim_mult, (std::vector<int>{1, 2, 4, 4}));
  EXPECT_EQ(c->num_res_blocks, 2);
  EXPECT_EQ(c->temporal_downsample, (std::vector<bool>{false, true, true}));
  EXPECT_TRUE(c->has_encoder);
  EXPECT_EQ(c->spatial_factor(), 8);
  EXPECT_EQ(c->VideoFrames(21), 81);
}

TEST(WanVaeConfigTest, ReleasedVaeHas194KeysAndIsInferredBack) {
  const WanVaeConfig released;  // defaults: base 96
  auto shapes = WanVaeWeightShapes(released);
  EXPECT_EQ(shapes.size(), 194u);
  // Shapes only: zero-stride tensors cost no memory.
  WeightMap w;
  int64_t params = 0;
  for (const auto& [key, shape] : shapes) {
    w[key] = at::zeros({1}).expand(shape);
    params += w[key].numel();
  }
  EXPECT_NEAR(params / 1e6, 126.9, 0.05);  // §2: "126.9 M params"
  absl::StatusOr<WanVaeConfig> c = InferWanVaeConfig(w);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->base_dim, 96);
  EXPECT_EQ(c->dim_mult, released.dim_mult);
  EXPECT_EQ(c->num_res_blocks, 2);
  EXPECT_EQ(c->temporal_downsample, released.temporal_downsample);
  // §2's decoder layout: upsample3d at 3 and 7, upsample2d at 11, a
  // shortcut at 4.
  std::vector<VaeLayerSpec> dec = WanVaeDecoderLayers(released);
  ASSERT_EQ(dec.size(), 15u);
  EXPECT_EQ(dec[3].kind, VaeLayerKind::kUpsample3d);
  EXPECT_EQ(dec[7].kind, VaeLayerKind::kUpsample3d);
  EXPECT_EQ(dec[11].kind, VaeLayerKind::kUpsample2d);
  EXPECT_EQ(dec[4].in_dim, 192);
  EXPECT_EQ(dec[4].out_dim, 384);
  EXPECT_EQ(dec[14].out_dim, 96);
}

TEST(WanVaeCreateTest, ErrorsNameTheKey) {
  {
    WeightMap w = TinyWeights();
    w.erase("decoder.upsamples.4.shortcut.weight");
    absl::StatusOr<WanVae> v = WanVae::Create(w);
    ASSERT_FALSE(v.ok());
    EXPECT_THAT(v.status().message(),
                HasSubstr("missing key \"decoder.upsamples.4.shortcut.weight\""));
  }
  {
    WeightMap w = TinyWeights();
    w["decoder.middle.1.norm.gamma"] = at::ones({32, 1, 1, 1});
    absl::StatusOr<WanVae> v = WanVae::Create(w);
    ASSERT_FALSE(v.ok());
    EXPECT_THAT(v.status().message(),
                HasSubstr("\"decoder.middle.1.norm.gamma\" has shape "
                          "[32, 1, 1, 1], expected [32, 1, 1]"));
  }
  {
    WeightMap w = TinyWeights();
    w["decoder.upsamples.1.extra.weight"] = at::ones({1});
    absl::StatusOr<WanVae> v = WanVae::Create(w);
    ASSERT_FALSE(v.ok());
    EXPECT_THAT(v.status().message(),
                HasSubstr("decoder.upsamples.1.extra.weight"));
  }
  {
    WeightMap w = TinyWeights();
    w.erase("conv2.weight");
    absl::StatusOr<WanVae> v = WanVae::Create(w);
    ASSERT_FALSE(v.ok());
    EXPECT_THAT(v.status().message(), HasSubstr("\"conv2.weight\""));
  }
  {
    WeightMap w = TinyWeights();
    w["encoder.downsamples.0.residual.2.weight"] =
        at::zeros({8, 8, 3, 3, 3}, at::kLong);
    absl::StatusOr<WanVae> v = WanVae::Create(w);
    ASSERT_FALSE(v.ok());
    EXPECT_THAT(v.status().message(),
                HasSubstr("\"encoder.downsamples.0.residual.2.weight\" has "
                          "dtype Long"));
  }
}

TEST(WanVaeDecodeTest, ShapeRangeAndDeterminism) {
  at::Tensor z = Latents(4);
  absl::StatusOr<at::Tensor> video = TinyVae().Decode(z);
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->sizes(), (std::vector<int64_t>{1, 3, 13, 32, 48}));
  EXPECT_EQ(video->scalar_type(), at::kFloat);
  EXPECT_LE(video->abs().max().item<float>(), 1.0f);
  EXPECT_GT(video->std().item<float>(), 0.05f);
  EXPECT_TRUE(at::equal(*video, *TinyVae().Decode(z)));
}

TEST(WanVaeDecodeTest, ChunkedEqualsOneShot) {
  at::Tensor z = Latents(5);
  absl::StatusOr<at::Tensor> chunked = TinyVae().Decode(z);
  absl::StatusOr<at::Tensor> one_shot = TinyVae().DecodeOneShot(z);
  ASSERT_TRUE(chunked.ok() && one_shot.ok());
  const double rel = MaxRel(*chunked, *one_shot);
  std::printf("decode chunked vs one-shot (fp32): max|d|/max|ref| = %.3g\n",
              rel);
  EXPECT_LE(rel, 1e-5);
}

TEST(WanVaeDecodeTest, StreamOfUnevenChunksEqualsDecode) {
  at::Tensor z = Latents(5);
  WanVaeDecodeStream stream = TinyVae().NewDecodeStream();
  std::vector<at::Tensor> parts;
  int64_t start = 0;
  for (int64_t len : {1, 2, 1, 1}) {
    absl::StatusOr<at::Tensor> part = stream.Push(z.narrow(2, start, len));
    ASSERT_TRUE(part.ok()) << part.status();
    EXPECT_EQ(part->size(2), start == 0 ? 1 + 4 * (len - 1) : 4 * len);
    parts.push_back(*part);
    start += len;
  }
  EXPECT_EQ(stream.latent_frames_pushed(), 5);
  EXPECT_LE(MaxRel(at::cat(parts, 2), *TinyVae().Decode(z)), 1e-5);
  absl::StatusOr<at::Tensor> bad = stream.Push(at::randn({1, 16, 1, 4, 8}));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("must stay the same"));
}

// Bytes the stream's cache holds.
int64_t CacheBytes(const CausalCache& cache) {
  int64_t bytes = 0;
  for (const at::Tensor& t : cache.tails) {
    if (t.defined()) bytes += t.storage().nbytes();
  }
  return bytes;
}

TEST(WanVaeDecodeTest, CacheIsTwoFramesPerLayerWhateverTheLength) {
  at::Tensor z = Latents(6);
  WanVaeDecodeStream stream = TinyVae().NewDecodeStream();
  std::vector<int64_t> bytes;
  for (int64_t i = 0; i < 6; ++i) {
    ASSERT_TRUE(stream.Push(z.narrow(2, i, 1)).ok());
    const CausalCache& cache = stream.cache();
    // 33 causal convs: conv1, 2 per residual block (2 middle + 12), head,
    // 2 time_convs.
    ASSERT_EQ(cache.tails.size(), 1u + 2 * 14 + 1 + 2);
    for (const at::Tensor& t : cache.tails) {
      if (!t.defined()) continue;  // a time_conv before its second chunk
      EXPECT_LE(t.size(2), kCausalCacheFrames);
      EXPECT_EQ(t.storage().nbytes(), t.numel() * t.element_size());
    }
    bytes.push_back(CacheBytes(cache));
  }
  // Steady after the third chunk: memory does not grow with the video.
  EXPECT_EQ(bytes[3], bytes[2]);
  EXPECT_EQ(bytes[5], bytes[2]);
}

TEST(WanVaeDecodeTest, DtypeIsAParameter) {
  absl::StatusOr<WanVae> f64 =
      WanVae::Create(TinyWeights(), {at::kCPU, at::kDouble});
  ASSERT_TRUE(f64.ok()) << f64.status();
  at::Tensor z = Latents(3);
  absl::StatusOr<at::Tensor> a = f64->Decode(z);
  absl::StatusOr<at::Tensor> b = f64->DecodeOneShot(z);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->scalar_type(), at::kDouble);
  // In f64 the two formulations agree to rounding (the fp32 gap of
  // ChunkedEqualsOneShot is accumulation order, not a different function).
  const double rel64 = MaxRel(*a, *b);
  std::printf("decode chunked vs one-shot (f64): max|d|/max|ref| = %.3g\n",
              rel64);
  EXPECT_LE(rel64, 1e-12);
  EXPECT_LE(MaxRel(*a, *TinyVae().Decode(z)), 1e-4);
}

TEST(WanVaeDecodeTest, RejectsBadLatents) {
  absl::StatusOr<at::Tensor> bad = TinyVae().Decode(at::randn({1, 8, 2, 4, 4}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("[1, 8, 2, 4, 4]"));
}

TEST(WanVaeEncodeTest, ShapeAndChunkedEqualsOneShot) {
  at::manual_seed(9);
  at::Tensor video = at::rand({1, 3, 13, 32, 48}).mul_(2).sub_(1);
  absl::StatusOr<at::Tensor> chunked = TinyVae().Encode(video);
  absl::StatusOr<at::Tensor> one_shot = TinyVae().EncodeOneShot(video);
  ASSERT_TRUE(chunked.ok()) << chunked.status();
  ASSERT_TRUE(one_shot.ok()) << one_shot.status();
  EXPECT_EQ(chunked->sizes(), (std::vector<int64_t>{1, 16, 4, 4, 6}));
  const double rel = MaxRel(*chunked, *one_shot);
  std::printf("encode chunked vs one-shot (fp32): max|d|/max|ref| = %.3g\n",
              rel);
  EXPECT_LE(rel, 1e-5);
}

TEST(WanVaeEncodeTest, RejectsFrameCountsOffTheGrid) {
  absl::StatusOr<at::Tensor> bad =
      TinyVae().Encode(at::zeros({1, 3, 12, 32, 48}));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("1 + 4k"));
}

TEST(WanVaeEncodeTest, DecoderOnlyWeightsDecodeButCannotEncode) {
  WeightMap w;
  for (const auto& [key, t] : TinyWeights()) {
    if (key.rfind("encoder.", 0) != 0 && key.rfind("conv1.", 0) != 0) {
      w[key] = t;
    }
  }
  absl::StatusOr<WanVae> vae = WanVae::Create(w);
  ASSERT_TRUE(vae.ok()) << vae.status();
  EXPECT_FALSE(vae->config().has_encoder);
  EXPECT_EQ(vae->config().base_dim, 8);
  at::Tensor z = Latents(2);
  EXPECT_TRUE(at::equal(*vae->Decode(z), *TinyVae().Decode(z)));
  EXPECT_EQ(vae->Encode(at::zeros({1, 3, 5, 32, 48})).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace dserve::models
