#include "common/testing/png_compare.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace dserve::common::testing {

absl::StatusOr<PixelDiff> ComparePixels(const DecodedImage& a,
                                        const DecodedImage& b) {
  if (a.width != b.width || a.height != b.height ||
      a.rgb.size() != b.rgb.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ComparePixels: ", a.width, "x", a.height, " vs ", b.width, "x",
        b.height));
  }
  PixelDiff d;
  d.total = a.rgb.size();
  for (size_t i = 0; i < a.rgb.size(); ++i) {
    const int delta = std::abs(int{a.rgb[i]} - int{b.rgb[i]});
    d.max_abs = std::max(d.max_abs, delta);
    d.differing += delta != 0;
  }
  return d;
}

bool SamePictureUpToRounding(const PixelDiff& diff) {
  return diff.max_abs <= 1 && diff.differing * 100 <= diff.total;
}

}  // namespace dserve::common::testing
