#include "tests/testing/png_decode.h"

#include <png.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dserve::tests {

absl::StatusOr<DecodedPng> DecodePngRgb(std::string_view data) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_memory(&image, data.data(), data.size()) ==
      0) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a PNG (", data.size(), " bytes): ", image.message));
  }
  image.format = PNG_FORMAT_RGB;
  DecodedPng decoded;
  decoded.width = static_cast<int>(image.width);
  decoded.height = static_cast<int>(image.height);
  decoded.rgb.resize(PNG_IMAGE_SIZE(image));
  if (png_image_finish_read(&image, /*background=*/nullptr,
                            decoded.rgb.data(), /*row_stride=*/0,
                            /*colormap=*/nullptr) == 0) {
    png_image_free(&image);
    return absl::InvalidArgumentError(
        absl::StrCat("PNG decode failed: ", image.message));
  }
  return decoded;
}

}  // namespace dserve::tests
