#include "common/testing/png_compare.h"

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace dserve::common::testing {
namespace {

TEST(ComparePixelsTest, CountsDifferencesAndAllowsOneLevelRarely) {
  DecodedImage a{10, 10, std::vector<uint8_t>(300, 100)};
  DecodedImage b = a;
  absl::StatusOr<PixelDiff> same = ComparePixels(a, b);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->max_abs, 0);
  EXPECT_EQ(same->differing, 0u);
  EXPECT_TRUE(SamePictureUpToRounding(*same));

  b.rgb[7] = 101;  // one byte, one level: rounding
  absl::StatusOr<PixelDiff> one = ComparePixels(a, b);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->max_abs, 1);
  EXPECT_EQ(one->differing, 1u);
  EXPECT_TRUE(SamePictureUpToRounding(*one));

  b.rgb[8] = 98;  // two levels: a real difference
  EXPECT_FALSE(SamePictureUpToRounding(*ComparePixels(a, b)));

  b = a;
  for (int i = 0; i < 4; ++i) b.rgb[i] = 101;  // 4 of 300 bytes > 1%
  EXPECT_FALSE(SamePictureUpToRounding(*ComparePixels(a, b)));

  DecodedImage small{5, 5, std::vector<uint8_t>(75, 0)};
  EXPECT_EQ(ComparePixels(a, small).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dserve::common::testing
