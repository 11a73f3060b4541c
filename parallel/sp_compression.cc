#include "parallel/sp_compression.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dserve::parallel {
namespace {

constexpr SpCompression kModes[] = {SpCompression::kOff, SpCompression::kInt8,
                                    SpCompression::kInt4};

}  // namespace

std::string SpCompressionName(SpCompression mode) {
  switch (mode) {
    case SpCompression::kInt8:
      return "int8";
    case SpCompression::kInt4:
      return "int4";
    case SpCompression::kOff:
      break;
  }
  return "off";
}

std::string SpCompressionChoices() {
  std::string out;
  for (SpCompression mode : kModes) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", SpCompressionName(mode));
  }
  return out;
}

absl::StatusOr<SpCompression> ParseSpCompression(absl::string_view name) {
  for (SpCompression mode : kModes) {
    if (name == SpCompressionName(mode)) return mode;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "sp_compression = '", name, "' is not one of: ", SpCompressionChoices()));
}

}  // namespace dserve::parallel
