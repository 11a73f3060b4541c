#include "worker/models/pixels.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include <ATen/ATen.h>

namespace dserve::models {

absl::StatusOr<std::vector<uint8_t>> ToRgb8(const at::Tensor& image) {
  if (!image.defined() || image.dim() != 3 || image.size(2) != 3 ||
      !at::isFloatingType(image.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ToRgb8: image must be a floating [H, W, 3] tensor, got ",
        image.defined() ? absl::StrCat("[", absl::StrJoin(image.sizes(), ", "),
                                       "] ",
                                       c10::toString(image.scalar_type()))
                        : "an undefined tensor"));
  }
  at::Tensor bytes = image.to(at::kCPU, at::kFloat)
                         .clamp(0.0, 1.0)
                         .mul(255.0)
                         .round()
                         .to(at::kByte)
                         .contiguous();
  std::vector<uint8_t> out(bytes.numel());
  std::memcpy(out.data(), bytes.data_ptr<uint8_t>(), out.size());
  return out;
}

}  // namespace dserve::models
