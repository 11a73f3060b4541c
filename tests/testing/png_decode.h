#ifndef DSERVE_TESTS_TESTING_PNG_DECODE_H_
#define DSERVE_TESTS_TESTING_PNG_DECODE_H_

// Decodes a PNG with libpng's simplified API, independently of the server's
// own encoder, so the end-to-end tests check that what clients receive is a
// PNG any decoder accepts.
//
// Thread-safety: pure function. Blocking: CPU only.

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace dserve::tests {

struct DecodedPng {
  int width = 0;
  int height = 0;
  // Row-major 8-bit RGB, width * height * 3 bytes.
  std::vector<uint8_t> rgb;
};

// INVALID_ARGUMENT with libpng's message when `data` is not a valid PNG.
absl::StatusOr<DecodedPng> DecodePngRgb(std::string_view data);

}  // namespace dserve::tests

#endif  // DSERVE_TESTS_TESTING_PNG_DECODE_H_
