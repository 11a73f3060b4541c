#ifndef DSERVE_PARALLEL_SP_COMPRESSION_H_
#define DSERVE_PARALLEL_SP_COMPRESSION_H_

// The --sp_compression schemes (issue 15 item 2) and their names, without
// LibTorch: the server checks the flag here and passes the name on; the
// worker parses it into ParallelDiTOptions. The codec itself is
// parallel/activation_codec.h. Pure functions; thread-safe.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dserve::parallel {

enum class SpCompression {
  kOff,   // exact, today's path bit for bit
  kInt8,  // int8 residual, fp32 scale per channel
  kInt4,  // int4 residual (two per byte), fp32 scale per channel
};

// Exact (uncompressed) steps at the start of each plan when the caller does
// not choose. The first step has no reference, so at least 1; a second
// exact step measured no better (bench/sp_compression_bench, 20 steps:
// PSNR vs exact within 2 dB either way for int8 and int4 on ulysses=2,
// ring=2 and ring=2,ulysses=2) and costs the whole-run ratio 3.11x -> 2.80x
// for int8.
inline constexpr int kDefaultSpExactSteps = 1;
// The most exact steps --sp_compression_exact_steps accepts (the most
// steps a request may ask for; more would only mean "never compress").
inline constexpr int kMaxSpExactSteps = 10000;

// "off", "int8" or "int4"; INVALID_ARGUMENT naming the value and the
// choices ("sp_compression = 'x' is not one of: off, int8, int4").
absl::StatusOr<SpCompression> ParseSpCompression(absl::string_view name);
std::string SpCompressionName(SpCompression mode);
// "off, int8, int4": for flag help and errors.
std::string SpCompressionChoices();

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_SP_COMPRESSION_H_
