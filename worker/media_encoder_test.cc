#include "worker/media_encoder.h"

#include <cstring>

#include "common/png.h"
#include "gtest/gtest.h"
#include <ATen/ATen.h>

namespace dserve::worker {
namespace {

TEST(MediaEncoderTest, OnePngPerFrameWithExactBytes) {
  // Two 3x2 frames with known values, including out-of-range ones that must
  // clamp.
  at::Tensor pixels = at::zeros({2, 3, 2, 3}, at::kFloat);
  pixels[0][0][0][0] = 1.0;
  pixels[0][2][1][2] = 2.0;   // clamps to 255
  pixels[1][1][0][1] = 0.5;   // 127.5 rounds to 128
  pixels[1][2][1][0] = -1.0;  // clamps to 0
  absl::StatusOr<std::vector<dserve::v1::Media>> media =
      EncodeMedia(pixels, dserve::v1::OUTPUT_FORMAT_PNG);
  ASSERT_TRUE(media.ok()) << media.status();
  ASSERT_EQ(media->size(), 2u);
  for (int f = 0; f < 2; ++f) {
    const dserve::v1::Media& m = (*media)[f];
    EXPECT_EQ(m.mime_type(), "image/png");
    EXPECT_EQ(m.width(), 2);
    EXPECT_EQ(m.height(), 3);
    EXPECT_EQ(m.frame_index(), f);
    auto decoded = common::DecodePng(m.data());
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->width, 2);
    EXPECT_EQ(decoded->height, 3);
    ASSERT_EQ(decoded->rgb.size(), 3u * 2u * 3u);
  }
  auto f0 = common::DecodePng((*media)[0].data());
  auto f1 = common::DecodePng((*media)[1].data());
  ASSERT_TRUE(f0.ok() && f1.ok());
  EXPECT_EQ(static_cast<int>(f0->rgb[0]), 255);
  EXPECT_EQ(static_cast<int>(f0->rgb[(2 * 2 + 1) * 3 + 2]), 255);
  EXPECT_EQ(static_cast<int>(f0->rgb[1]), 0);
  EXPECT_EQ(static_cast<int>(f1->rgb[(1 * 2 + 0) * 3 + 1]), 128);
  EXPECT_EQ(static_cast<int>(f1->rgb[(2 * 2 + 1) * 3 + 0]), 0);
}

TEST(MediaEncoderTest, UnspecifiedFormatMeansPng) {
  at::Tensor pixels = at::full({1, 4, 4, 3}, 0.25, at::kFloat);
  auto media = EncodeMedia(pixels, dserve::v1::OUTPUT_FORMAT_UNSPECIFIED);
  ASSERT_TRUE(media.ok()) << media.status();
  ASSERT_EQ(media->size(), 1u);
  EXPECT_EQ((*media)[0].mime_type(), "image/png");
}

TEST(MediaEncoderTest, RawTensorKeepsFloatValuesAndShape) {
  at::Tensor pixels = at::rand({2, 3, 4, 3}, at::kFloat);
  auto media = EncodeMedia(pixels, dserve::v1::OUTPUT_FORMAT_RAW_TENSOR);
  ASSERT_TRUE(media.ok()) << media.status();
  ASSERT_EQ(media->size(), 1u);
  const dserve::v1::Media& m = (*media)[0];
  EXPECT_EQ(m.mime_type(), "application/x-dserve-f32");
  ASSERT_EQ(m.shape_size(), 4);
  EXPECT_EQ(m.shape(0), 2);
  EXPECT_EQ(m.shape(1), 3);
  EXPECT_EQ(m.shape(2), 4);
  EXPECT_EQ(m.shape(3), 3);
  EXPECT_EQ(m.width(), 4);
  EXPECT_EQ(m.height(), 3);
  ASSERT_EQ(m.data().size(), 2u * 3 * 4 * 3 * sizeof(float));
  at::Tensor back = at::empty({2, 3, 4, 3}, at::kFloat);
  std::memcpy(back.data_ptr(), m.data().data(), m.data().size());
  EXPECT_TRUE(at::equal(back, pixels));
}

TEST(MediaEncoderTest, RejectsBadShapesAndFormats) {
  EXPECT_EQ(EncodeMedia(at::zeros({4, 4, 3}), dserve::v1::OUTPUT_FORMAT_PNG)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      EncodeMedia(at::zeros({1, 4, 4, 4}), dserve::v1::OUTPUT_FORMAT_PNG)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  // A value from a newer frontend this build does not know.
  absl::Status s = EncodeMedia(at::zeros({1, 4, 4, 3}),
                               static_cast<dserve::v1::OutputFormat>(9))
                       .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("output_format=9"), absl::string_view::npos);
}

TEST(MediaEncoderTest, Mp4IsOneVideoWithItsFramesAndFps) {
  at::Tensor pixels = at::rand({5, 24, 33, 3});
  auto media = EncodeMedia(pixels, dserve::v1::OUTPUT_FORMAT_MP4, 12);
  ASSERT_TRUE(media.ok()) << media.status();
  ASSERT_EQ(media->size(), 1u);
  const dserve::v1::Media& m = (*media)[0];
  EXPECT_EQ(m.mime_type(), "video/mp4");
  EXPECT_EQ(m.data().substr(4, 4), "ftyp");
  EXPECT_EQ(m.width(), 33);  // the generated size, not the padded one
  EXPECT_EQ(m.height(), 24);
  EXPECT_EQ(m.num_frames(), 5);
  EXPECT_EQ(m.fps(), 12);
}

TEST(MediaEncoderTest, PngFrameRejectsNonImage) {
  EXPECT_FALSE(EncodePngFrame(at::zeros({4, 4}), 0).ok());
}

}  // namespace
}  // namespace dserve::worker
