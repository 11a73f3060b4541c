#include "worker/models/pixels.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dserve::models {
namespace {

using ::testing::ElementsAre;

TEST(PixelsTest, RoundsAndClamps) {
  at::Tensor img = at::tensor({0.0f, 1.0f, 0.5f, -0.2f, 1.7f, 0.1f},
                              at::kFloat).view({1, 2, 3});
  absl::StatusOr<std::vector<uint8_t>> rgb = ToRgb8(img);
  ASSERT_TRUE(rgb.ok());
  EXPECT_THAT(*rgb, ElementsAre(0, 255, 128, 0, 255, 26));
}

TEST(PixelsTest, RowMajorLayout) {
  at::Tensor img = at::zeros({2, 2, 3});
  img[1][0][2] = 1.0f;  // row 1, column 0, blue
  absl::StatusOr<std::vector<uint8_t>> rgb = ToRgb8(img);
  ASSERT_TRUE(rgb.ok());
  EXPECT_EQ((*rgb)[(1 * 2 + 0) * 3 + 2], 255);
  EXPECT_EQ(std::count(rgb->begin(), rgb->end(), 255), 1);
}

TEST(PixelsTest, RejectsWrongShape) {
  EXPECT_EQ(ToRgb8(at::zeros({2, 2, 4})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ToRgb8(at::zeros({2, 2, 3}, at::kByte)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dserve::models
