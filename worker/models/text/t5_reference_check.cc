// Checks the C++ umT5 encoder against a reference case written by
// tools/reference/wan_reference.py t5 (the contract in
// worker/models/text/README.md): loads the case's weights and input ids,
// runs Umt5Encoder::EncodeContext (fp32, CPU) and compares with
// expected.context. Prints `max|d|/max|ref| = X` and exits 1 above --tol.
//
//   t5_reference_check --case=t5.safetensors --tol=1e-4

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "worker/models/safetensors.h"
#include "worker/models/text/umt5_encoder.h"
#include <nlohmann/json.hpp>
#include <ATen/ATen.h>

ABSL_FLAG(std::string, case, "", "Reference case file (.safetensors).");
ABSL_FLAG(double, tol, 1e-4, "Largest allowed max|d|/max|ref|.");
ABSL_FLAG(std::string, dtype, "fp32",
          "Compute dtype: fp32 (the contract's check), bf16 (Wan's policy, "
          "weights cast to bf16; expect ~1e-2) or fp64.");

namespace dserve::models {
namespace {

int Run() {
  const std::string path = absl::GetFlag(FLAGS_case);
  auto tensors = ReadSafetensors(path);
  if (!tensors.ok()) {
    std::fprintf(stderr, "t5_reference_check: %s\n",
                 tensors.status().ToString().c_str());
    return 2;
  }
  auto metadata = ReadSafetensorsMetadata(path);
  if (!metadata.ok() || metadata->count("config") == 0) {
    std::fprintf(stderr, "t5_reference_check: %s has no config metadata\n",
                 path.c_str());
    return 2;
  }
  const nlohmann::json config = nlohmann::json::parse(metadata->at("config"));
  const int64_t text_len = config.at("text_len").get<int64_t>();

  WeightMap weights;
  std::vector<std::vector<int64_t>> ids;
  for (const auto& [key, t] : *tensors) {
    if (key.rfind("input.", 0) != 0 && key.rfind("expected.", 0) != 0) {
      weights[key] = t;
    }
  }
  for (int i = 0;; ++i) {
    auto it = tensors->find(absl::StrCat("input.ids.", i));
    if (it == tensors->end()) break;
    const at::Tensor t = it->second.to(at::kLong).contiguous();
    ids.emplace_back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  }
  auto expected = tensors->find("expected.context");
  if (ids.empty() || expected == tensors->end()) {
    std::fprintf(stderr, "t5_reference_check: %s lacks input.ids.0 or "
                 "expected.context\n", path.c_str());
    return 2;
  }
  Umt5Numerics numerics;
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  if (dtype == "bf16") {
    numerics.compute_dtype = at::kBFloat16;
  } else if (dtype == "fp64") {
    numerics.compute_dtype = at::kDouble;
  } else if (dtype != "fp32") {
    std::fprintf(stderr, "t5_reference_check: --dtype=%s is not fp32, bf16 "
                 "or fp64\n", dtype.c_str());
    return 2;
  }
  auto encoder = Umt5Encoder::Create(weights, numerics);
  if (!encoder.ok()) {
    std::fprintf(stderr, "t5_reference_check: %s\n",
                 encoder.status().ToString().c_str());
    return 2;
  }
  const Umt5Config& c = (*encoder)->config();
  for (const char* key : {"vocab", "dim", "heads", "head_dim", "ffn_dim",
                          "layers", "num_buckets", "max_distance"}) {
    const int64_t want = config.at(key).get<int64_t>();
    const int64_t got = std::string(key) == "vocab"       ? c.vocab
                        : std::string(key) == "dim"       ? c.dim
                        : std::string(key) == "heads"     ? c.num_heads
                        : std::string(key) == "head_dim"  ? c.head_dim
                        : std::string(key) == "ffn_dim"   ? c.ffn_dim
                        : std::string(key) == "layers"    ? c.num_layers
                        : std::string(key) == "num_buckets" ? c.num_buckets
                                                            : c.max_distance;
    if (want != got) {
      std::fprintf(stderr, "t5_reference_check: config %s = %lld but the "
                   "weights give %lld\n", key, static_cast<long long>(want),
                   static_cast<long long>(got));
      return 1;
    }
  }
  auto context = (*encoder)->EncodeContext(ids, text_len);
  if (!context.ok()) {
    std::fprintf(stderr, "t5_reference_check: %s\n",
                 context.status().ToString().c_str());
    return 2;
  }
  const at::Tensor ref = expected->second.to(at::kFloat);
  if (ref.sizes() != context->sizes()) {
    std::fprintf(stderr, "t5_reference_check: expected.context is %s, got %s\n",
                 c10::str(ref.sizes()).c_str(),
                 c10::str(context->sizes()).c_str());
    return 1;
  }
  const double err = (*context - ref).abs().max().item<double>() /
                     ref.abs().max().item<double>();
  std::printf("context (%s): max|d|/max|ref| = %.3g (tol %.3g)\n",
              dtype.c_str(), err, absl::GetFlag(FLAGS_tol));
  // The padding rows must be exactly zero on both sides.
  for (size_t b = 0; b < ids.size(); ++b) {
    const int64_t n = static_cast<int64_t>(ids[b].size());
    const double pad = (*context)[static_cast<int64_t>(b)]
                           .narrow(0, n, text_len - n)
                           .abs()
                           .max()
                           .item<double>();
    if (pad != 0.0) {
      std::printf("context[%zu] rows >= %lld are not zero (%g)\n", b,
                  static_cast<long long>(n), pad);
      return 1;
    }
  }
  return err <= absl::GetFlag(FLAGS_tol) ? 0 : 1;
}

}  // namespace
}  // namespace dserve::models

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dserve::models::Run();
}
