#include "common/png.h"

#include <cstdint>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dserve::common {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> Gradient(int w, int h) {
  std::vector<uint8_t> rgb(3 * w * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &rgb[3 * (y * w + x)];
      p[0] = static_cast<uint8_t>(x * 7);
      p[1] = static_cast<uint8_t>(y * 13);
      p[2] = static_cast<uint8_t>((x * y) % 251);
    }
  return rgb;
}

TEST(PngTest, EncodeDecodeRoundTrip) {
  const int w = 37, h = 19;
  std::vector<uint8_t> rgb = Gradient(w, h);
  absl::StatusOr<std::string> png = EncodePng(rgb.data(), w, h);
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(png->substr(1, 3), "PNG");
  absl::StatusOr<DecodedImage> img = DecodePng(*png);
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->width, w);
  EXPECT_EQ(img->height, h);
  EXPECT_EQ(img->rgb, rgb);
}

TEST(PngTest, EncodingIsDeterministic) {
  std::vector<uint8_t> rgb = Gradient(16, 16);
  EXPECT_EQ(*EncodePng(rgb.data(), 16, 16), *EncodePng(rgb.data(), 16, 16));
  rgb[5] ^= 1;
  EXPECT_NE(*EncodePng(rgb.data(), 16, 16),
            *EncodePng(Gradient(16, 16).data(), 16, 16));
}

TEST(PngTest, RejectsBadSizesAndData) {
  std::vector<uint8_t> rgb = Gradient(4, 4);
  absl::StatusOr<std::string> zero = EncodePng(rgb.data(), 0, 4);
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.status().message(), HasSubstr("0x4"));
  EXPECT_EQ(EncodePng(nullptr, 4, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodePng("not a png").status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string png = *EncodePng(rgb.data(), 4, 4);
  absl::StatusOr<DecodedImage> truncated =
      DecodePng(std::string_view(png).substr(0, png.size() / 2));
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dserve::common
