// Both latent decoders report each item's decode chunks (the DECODE progress
// a job streams) and give the same pixels with or without a listener; the
// Wan decoder's chunk-by-chunk decode equals WanVae::Decode.

#include "worker/models/latent_decoder.h"

#include <memory>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "worker/models/vae/testing/random_vae_weights.h"
#include "worker/models/vae/wan_vae.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

using Call = std::tuple<int, int, int>;  // item, chunks_done, chunks_total

TEST(LatentDecoderTest, PixelDecoderReportsTheBatchAsOneChunk) {
  std::unique_ptr<LatentDecoder> decoder = MakePixelDecoder();
  const at::Tensor latents = at::randn({2, 3, 4, 8, 6});
  std::vector<Call> calls;
  const at::Tensor pixels =
      decoder->Decode(latents, [&](int item, int done, int total) {
        calls.emplace_back(item, done, total);
      });
  EXPECT_EQ(calls, (std::vector<Call>{{0, 0, 1}, {1, 0, 1}, {0, 1, 1},
                                      {1, 1, 1}}));
  EXPECT_EQ(pixels.sizes(), (std::vector<int64_t>{2, 4, 8, 6, 3}));
  EXPECT_TRUE(at::equal(pixels, decoder->Decode(latents, nullptr)));
}

TEST(LatentDecoderTest, WanDecoderReportsEveryLatentFrameOfEveryItem) {
  const WanVaeConfig config = TinyWanVaeConfig();
  const WeightMap weights = RandomWanVaeWeights(config, 3);
  absl::StatusOr<std::unique_ptr<LatentDecoder>> decoder =
      MakeWanVaeDecoder(weights, at::kCPU, config.z_dim);
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  // 2 items of 3 latent frames: 1 + 4*2 = 9 video frames each.
  at::manual_seed(4);
  const at::Tensor latents = at::randn({2, config.z_dim, 3, 4, 6});
  std::vector<Call> calls;
  const at::Tensor pixels =
      (*decoder)->Decode(latents, [&](int item, int done, int total) {
        calls.emplace_back(item, done, total);
      });
  EXPECT_EQ(calls, (std::vector<Call>{{0, 0, 3},
                                      {0, 1, 3},
                                      {0, 2, 3},
                                      {0, 3, 3},
                                      {1, 0, 3},
                                      {1, 1, 3},
                                      {1, 2, 3},
                                      {1, 3, 3}}));
  ASSERT_EQ(pixels.sizes(), (std::vector<int64_t>{2, 9, 32, 48, 3}));
  EXPECT_TRUE(at::equal(pixels, (*decoder)->Decode(latents, nullptr)));

  // The same numbers as the VAE's own (chunked) decode, item by item.
  absl::StatusOr<WanVae> vae = WanVae::Create(weights);
  ASSERT_TRUE(vae.ok()) << vae.status();
  for (int64_t i = 0; i < 2; ++i) {
    absl::StatusOr<at::Tensor> video = vae->Decode(latents.narrow(0, i, 1));
    ASSERT_TRUE(video.ok()) << video.status();
    const at::Tensor want =
        video->clamp(-1.0, 1.0).add(1.0).mul(0.5).select(0, 0).permute(
            {1, 2, 3, 0});
    EXPECT_TRUE(at::equal(pixels[i], want)) << "item " << i;
  }
}

}  // namespace
}  // namespace dserve::models
