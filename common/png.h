#ifndef DSERVE_COMMON_PNG_H_
#define DSERVE_COMMON_PNG_H_

// PNG encoding of 8-bit RGB images with libpng, and decoding for tests and
// clients. Deterministic: the same pixels always give the same bytes (no
// timestamps or text chunks, fixed compression settings).
//
// Stateless and thread-safe (each call owns its libpng state); calls block
// until the image is (de)compressed. No torch dependency.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace dserve::common {

// Largest width or height accepted by EncodePng / DecodePng.
inline constexpr int kMaxPngDimension = 1 << 15;

// `rgb` holds height rows of width RGB triples (3·width·height bytes).
// INVALID_ARGUMENT for a null buffer or a size outside [1, kMaxPngDimension].
absl::StatusOr<std::string> EncodePng(const uint8_t* rgb, int width,
                                      int height);

struct DecodedImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // 3·width·height bytes, row-major
};

// Decodes any PNG libpng reads (gray, palette, alpha, 16-bit are converted
// to 8-bit RGB). INVALID_ARGUMENT names what is wrong with the data.
absl::StatusOr<DecodedImage> DecodePng(std::string_view data);

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

}  // namespace dserve::common

#endif  // DSERVE_COMMON_PNG_H_
