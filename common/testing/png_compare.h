#ifndef DSERVE_COMMON_TESTING_PNG_COMPARE_H_
#define DSERVE_COMMON_TESTING_PNG_COMPARE_H_

// Test-only: how far apart two decoded pictures (common::DecodePng) are,
// for the tests that check a rendering against a reference.
// Pure functions; thread-safe.

#include <cstddef>

#include "absl/status/statusor.h"
#include "common/png.h"

namespace dserve::common::testing {

// Per-channel difference of two decoded pictures of the same size.
struct PixelDiff {
  int max_abs = 0;         // largest |a - b| over all bytes, 0..255
  size_t differing = 0;    // bytes that differ at all
  size_t total = 0;        // bytes compared
};
// INVALID_ARGUMENT if the sizes differ.
absl::StatusOr<PixelDiff> ComparePixels(const DecodedImage& a,
                                        const DecodedImage& b);

// The same picture up to float rounding: two renderings whose latents agree
// to ~1e-6 (sharded or batched GEMMs associate sums differently, and which
// kernels run depends on the shapes) can move a channel by one 8-bit level
// where a value sits on a rounding boundary, and only rarely. True when
// max_abs <= 1 and at most 1% of the bytes differ.
bool SamePictureUpToRounding(const PixelDiff& diff);

}  // namespace dserve::common::testing

#endif  // DSERVE_COMMON_TESTING_PNG_COMPARE_H_
