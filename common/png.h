#ifndef DSERVE_COMMON_PNG_H_
#define DSERVE_COMMON_PNG_H_

// PNG encoding of 8-bit RGB images with libpng, and decoding for tests and
// clients (tests compare decoded pictures with common/testing/png_compare.h).
// Deterministic: the same pixels always give the same bytes (no
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

}  // namespace dserve::common

#endif  // DSERVE_COMMON_PNG_H_
