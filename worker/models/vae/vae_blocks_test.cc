#include "worker/models/vae/vae_blocks.h"

#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include "worker/models/model_config.h"
#include "worker/models/vae/causal_conv3d.h"
#include "worker/models/vae/vae_weights.h"
#include "worker/models/vae/wan_vae_config.h"

namespace dserve::models {
namespace {

double MaxRel(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() /
         std::max(1e-30, b.abs().max().item<double>());
}

void AddConv(WeightMap& w, const std::string& name, std::vector<int64_t> shape) {
  w[name + ".weight"] = at::randn(shape).div_(std::sqrt(shape[1] * 9.0));
  w[name + ".bias"] = at::randn({shape[0]}).mul_(0.1);
}

TEST(VaeRmsNormTest, MatchesDirectFormula) {
  at::manual_seed(1);
  at::Tensor x = at::randn({2, 5, 3, 4, 4});
  at::Tensor gamma = at::rand({5, 1, 1, 1}).add_(0.5);
  at::Tensor want =
      x / x.pow(2).sum(1, /*keepdim=*/true).sqrt() * std::sqrt(5.0) * gamma;
  EXPECT_LT(MaxRel(VaeRmsNorm(x, gamma), want), 1e-6);
}

TEST(VaeRmsNormTest, IsAnL2NormalizeNotAnEpsRmsNorm) {
  // 1e-3 in each of 4 channels: ‖x‖ = 2e-3, so x/‖x‖·√4 = 1 exactly; an
  // RMSNorm with eps 1e-6 would give 1e-3/√(1e-6 + 1e-6) ≈ 0.707.
  at::Tensor x = at::full({1, 4, 1, 2, 2}, 1e-3);
  at::Tensor ones = at::ones({4, 1, 1, 1});
  EXPECT_TRUE(at::allclose(VaeRmsNorm(x, ones), at::ones_like(x), 1e-5, 0));
  // The 1e-12 floor: an all-zero pixel stays zero instead of NaN.
  at::Tensor zero = VaeRmsNorm(at::zeros({1, 4, 1, 2, 2}), ones);
  EXPECT_TRUE(at::equal(zero, at::zeros_like(zero)));
  // Broadcast of the attention's [C, 1, 1] gain over 4-D input.
  at::Tensor x4 = at::randn({3, 4, 2, 2});
  at::Tensor g3 = at::rand({4, 1, 1});
  EXPECT_LT(MaxRel(VaeRmsNorm(x4, g3),
                   x4 / x4.norm(2, {1}, true) * 2.0 * g3), 1e-6);
}

class CausalConvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::manual_seed(2);
    AddConv(weights_, "c", {4, 3, 3, 3, 3});
    VaeWeightReader reader(weights_, {});
    auto conv = CausalConv3d::Load(reader, slots_, "c", 3, 4, {3, 3, 3},
                                   {1, 1, 1});
    ASSERT_TRUE(conv.ok()) << conv.status();
    conv_ = *conv;
  }
  WeightMap weights_;
  CacheSlots slots_;
  CausalConv3d conv_;
};

TEST_F(CausalConvTest, PadsTwoZeroFramesBeforeAndNoneAfter) {
  at::Tensor x = at::randn({1, 3, 5, 6, 7});
  at::Tensor padded = at::cat({at::zeros({1, 3, 2, 6, 7}), x}, 2);
  padded = at::constant_pad_nd(padded, {1, 1, 1, 1});
  at::Tensor want =
      at::conv3d(padded, weights_["c.weight"], weights_["c.bias"]);
  at::Tensor got = conv_.Forward(x, nullptr);
  EXPECT_EQ(got.sizes(), (std::vector<int64_t>{1, 4, 5, 6, 7}));
  EXPECT_LT(MaxRel(got, want), 1e-6);
  EXPECT_EQ(slots_.tails, 1);
}

TEST_F(CausalConvTest, OutputFrameSeesNoFutureFrame) {
  at::Tensor x = at::randn({1, 3, 5, 4, 4});
  at::Tensor y = x.clone();
  y.narrow(2, 3, 1).add_(1.0);
  at::Tensor a = conv_.Forward(x, nullptr), b = conv_.Forward(y, nullptr);
  EXPECT_TRUE(at::equal(a.narrow(2, 0, 3), b.narrow(2, 0, 3)));
  EXPECT_FALSE(at::allclose(a.narrow(2, 3, 1), b.narrow(2, 3, 1)));
}

TEST_F(CausalConvTest, ChunksWithCacheEqualWholeAndCacheHoldsTwoFrames) {
  at::Tensor x = at::randn({2, 3, 7, 4, 5});
  at::Tensor whole = conv_.Forward(x, nullptr);
  CausalCache cache(slots_);
  std::vector<at::Tensor> parts;
  int64_t start = 0;
  for (int64_t len : {1, 2, 1, 3}) {
    parts.push_back(conv_.Forward(x.narrow(2, start, len), &cache));
    start += len;
    const at::Tensor& tail = cache.tails[0];
    EXPECT_EQ(tail.size(2), std::min<int64_t>(start, kCausalCacheFrames));
    // An owned copy: it does not keep the chunk's storage alive.
    EXPECT_EQ(tail.storage().nbytes(), tail.numel() * sizeof(float));
  }
  EXPECT_LT(MaxRel(at::cat(parts, 2), whole), 1e-6);
}

TEST(CausalConvSlotsTest, PointwiseConvKeepsNoHistory) {
  WeightMap w;
  AddConv(w, "s", {4, 3, 1, 1, 1});
  VaeWeightReader reader(w, {});
  CacheSlots slots;
  auto conv = CausalConv3d::Load(reader, slots, "s", 3, 4, {1, 1, 1},
                                 {0, 0, 0});
  ASSERT_TRUE(conv.ok());
  EXPECT_EQ(slots.tails, 0);
}

TEST(InterleaveTimeConvTest, FirstHalfIsEvenFramesSecondHalfOdd) {
  const int64_t c = 3, t = 2;
  at::Tensor y = at::arange(2 * c * t * 2, at::kFloat).view({1, 2 * c, t, 1, 2});
  at::Tensor out = InterleaveTimeConv(y);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, c, 2 * t, 1, 2}));
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t f = 0; f < t; ++f) {
      EXPECT_TRUE(at::equal(out.select(1, ch).select(1, 2 * f),
                            y.select(1, ch).select(1, f)));
      EXPECT_TRUE(at::equal(out.select(1, ch).select(1, 2 * f + 1),
                            y.select(1, c + ch).select(1, f)));
    }
  }
}

// A resample of `kind` over width 4 with random weights.
struct ResampleFixture {
  WeightMap weights;
  CacheSlots slots;
  Resample resample;
};

ResampleFixture MakeResample(VaeLayerKind kind) {
  ResampleFixture f;
  const bool up = kind == VaeLayerKind::kUpsample2d ||
                  kind == VaeLayerKind::kUpsample3d;
  const VaeLayerSpec spec{kind, 4, up ? 2 : 4};
  at::manual_seed(3);
  AddConv(f.weights, "r.resample.1", {spec.out_dim, 4, 3, 3});
  if (kind == VaeLayerKind::kUpsample3d) {
    AddConv(f.weights, "r.time_conv", {8, 4, 3, 1, 1});
  }
  if (kind == VaeLayerKind::kDownsample3d) {
    AddConv(f.weights, "r.time_conv", {4, 4, 3, 1, 1});
  }
  VaeWeightReader reader(f.weights, {});
  auto r = Resample::Load(reader, f.slots, "r", spec);
  EXPECT_TRUE(r.ok()) << r.status();
  f.resample = *r;
  return f;
}

TEST(ResampleTest, Upsample3dFirstFrameSkipsTimeConvRestHasZeroHistory) {
  ResampleFixture up3 = MakeResample(VaeLayerKind::kUpsample3d);
  at::Tensor x = at::randn({1, 4, 3, 3, 5});
  at::Tensor out = up3.resample.Forward(x, nullptr);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 2, 5, 6, 10}));
  // Frame 0 ("Rep"): exactly the per-frame spatial step, no time_conv.
  VaeWeightReader reader(up3.weights, {});
  CacheSlots unused;
  auto spatial_only = Resample::Load(reader, unused, "r",
                                     {VaeLayerKind::kUpsample2d, 4, 2});
  ASSERT_TRUE(spatial_only.ok());
  EXPECT_LT(MaxRel(out.narrow(2, 0, 1),
                   spatial_only->Forward(x.narrow(2, 0, 1), nullptr)),
            1e-6);
  // Frames 1.. are their own causal sequence: frame 0 does not reach them.
  at::Tensor y = x.clone();
  y.narrow(2, 0, 1).add_(1.0);
  at::Tensor out_y = up3.resample.Forward(y, nullptr);
  EXPECT_TRUE(at::equal(out.narrow(2, 1, 4), out_y.narrow(2, 1, 4)));
}

TEST(ResampleTest, Upsample3dChunksEqualWhole) {
  ResampleFixture f = MakeResample(VaeLayerKind::kUpsample3d);
  at::Tensor x = at::randn({2, 4, 4, 3, 3});
  at::Tensor whole = f.resample.Forward(x, nullptr);
  CausalCache cache(f.slots);
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < 4; ++i) {
    parts.push_back(f.resample.Forward(x.narrow(2, i, 1), &cache));
    EXPECT_EQ(parts.back().size(2), i == 0 ? 1 : 2);
  }
  EXPECT_LT(MaxRel(at::cat(parts, 2), whole), 1e-6);
}

TEST(ResampleTest, Downsample3dFirstFramePassesChunksEqualWhole) {
  ResampleFixture f = MakeResample(VaeLayerKind::kDownsample3d);
  at::Tensor x = at::randn({1, 4, 5, 6, 6});
  at::Tensor whole = f.resample.Forward(x, nullptr);
  ASSERT_EQ(whole.sizes(), (std::vector<int64_t>{1, 4, 3, 3, 3}));
  // Frame 0 passes time untouched: equal to the spatial step alone.
  VaeWeightReader reader(f.weights, {});
  CacheSlots unused;
  auto spatial_only = Resample::Load(reader, unused, "r",
                                     {VaeLayerKind::kDownsample2d, 4, 4});
  ASSERT_TRUE(spatial_only.ok());
  EXPECT_LT(MaxRel(whole.narrow(2, 0, 1),
                   spatial_only->Forward(x.narrow(2, 0, 1), nullptr)),
            1e-6);
  CausalCache cache(f.slots);
  at::Tensor a = f.resample.Forward(x.narrow(2, 0, 1), &cache);
  at::Tensor b = f.resample.Forward(x.narrow(2, 1, 2), &cache);
  at::Tensor c = f.resample.Forward(x.narrow(2, 3, 2), &cache);
  EXPECT_EQ(cache.tails[0].size(2), 1);
  EXPECT_LT(MaxRel(at::cat({a, b, c}, 2), whole), 1e-6);
}

}  // namespace
}  // namespace dserve::models
