#include "worker/models/vae/vae_weights.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

VaeWeightReader::VaeWeightReader(const WeightMap& weights,
                                 const VaeNumerics& numerics)
    : weights_(weights), numerics_(numerics) {}

absl::StatusOr<at::Tensor> VaeWeightReader::Get(
    const std::string& key, const std::vector<int64_t>& shape) {
  auto it = weights_.find(key);
  if (it == weights_.end() || !it->second.defined()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Wan VAE weights: missing key \"", key, "\" (expected ",
                     ShapeString(shape), ")"));
  }
  const at::Tensor& t = it->second;
  if (t.sizes() != at::IntArrayRef(shape)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Wan VAE weights: key \"", key, "\" has shape ",
                     ShapeString(t.sizes()), ", expected ", ShapeString(shape)));
  }
  if (!at::isFloatingType(t.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Wan VAE weights: key \"", key, "\" has dtype ",
        c10::toString(t.scalar_type()), ", expected a floating-point dtype"));
  }
  used_.insert(key);
  return t.to(numerics_.device, numerics_.dtype).contiguous();
}

absl::Status VaeWeightReader::CheckAllUsed() const {
  std::vector<std::string> unused;
  for (const auto& [key, tensor] : weights_) {
    if (used_.count(key) == 0) unused.push_back(key);
  }
  if (unused.empty()) return absl::OkStatus();
  const size_t shown = std::min<size_t>(unused.size(), 5);
  return absl::InvalidArgumentError(absl::StrCat(
      "Wan VAE weights: ", unused.size(), " unexpected key(s) for the ",
      "inferred config, e.g. \"",
      absl::StrJoin(unused.begin(), unused.begin() + shown, "\", \""),
      "\" (attention outside the middle or a different layout is not ",
      "supported)"));
}

}  // namespace dserve::models
