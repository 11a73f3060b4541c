#include "worker/models/testing/wan_case.h"

#include <cstdio>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/models/safetensors.h"
#include <ATen/ATen.h>

namespace dserve::models::testing {

absl::StatusOr<nlohmann::json> CaseConfig(const std::string& case_path) {
  absl::StatusOr<std::map<std::string, std::string>> meta =
      ReadSafetensorsMetadata(case_path);
  if (!meta.ok()) return meta.status();
  auto it = meta->find("config");
  if (it == meta->end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(case_path, ": no __metadata__.config"));
  }
  nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(case_path, ": __metadata__.config is not a JSON object"));
  }
  return j;
}

absl::StatusOr<DiTConfig> DiTConfigFromCase(const nlohmann::json& j) {
  DiTConfig c;
  try {
    c.dim = j.at("dim").get<int>();
    c.num_heads = j.at("heads").get<int>();
    c.ffn_dim = j.at("ffn_dim").get<int>();
    c.num_layers = j.at("layers").get<int>();
    c.freq_dim = j.at("freq_dim").get<int>();
    c.text_dim = j.at("text_dim").get<int>();
    c.text_len = j.at("text_len").get<int>();
    c.in_channels = j.at("in_dim").get<int>();
    c.out_channels = j.at("out_dim").get<int>();
    c.patch = j.at("patch").get<std::array<int, 3>>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("case DiT config ", j.dump(), ": ", e.what()));
  }
  c.eps = 1e-6;
  return c;
}

WeightMap WithPrefix(const WeightMap& all, const std::string& prefix) {
  WeightMap out;
  for (const auto& [key, value] : all) {
    if (key.compare(0, prefix.size(), prefix) == 0) {
      out.emplace(key.substr(prefix.size()), value);
    }
  }
  return out;
}

namespace {

class IdsPromptEncoder : public PromptEncoder {
 public:
  IdsPromptEncoder(std::unique_ptr<Umt5Encoder> encoder,
                   std::map<std::string, std::vector<int64_t>> ids_of,
                   int text_len)
      : encoder_(std::move(encoder)),
        ids_of_(std::move(ids_of)),
        text_len_(text_len) {}

  absl::StatusOr<PromptEncoding> Encode(
      const std::vector<std::string>& texts,
      const std::string& field) const override {
    std::vector<std::vector<int64_t>> ids;
    for (const std::string& t : texts) {
      auto it = ids_of_.find(t);
      if (it == ids_of_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, " \"", t, "\" has no ids in the case"));
      }
      ids.push_back(it->second);
    }
    PromptEncoding out;
    absl::StatusOr<at::Tensor> ctx = encoder_->EncodeContext(ids, text_len_);
    if (!ctx.ok()) return ctx.status();
    out.context = *std::move(ctx);
    out.unknown_words.resize(texts.size());
    return out;
  }

 private:
  std::unique_ptr<Umt5Encoder> encoder_;
  std::map<std::string, std::vector<int64_t>> ids_of_;
  int text_len_;
};

}  // namespace

std::unique_ptr<PromptEncoder> MakeIdsPromptEncoder(
    std::unique_ptr<Umt5Encoder> encoder,
    std::map<std::string, std::vector<int64_t>> ids_of, int text_len) {
  return std::make_unique<IdsPromptEncoder>(std::move(encoder),
                                            std::move(ids_of), text_len);
}

std::vector<int64_t> Ids(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(),
                              c.data_ptr<int64_t>() + c.numel());
}

bool ReportRelative(const std::string& name, const at::Tensor& got,
                    const at::Tensor& want, double tol) {
  if (got.sizes() != want.sizes()) {
    std::printf("%s: shape [%s], expected [%s] FAIL\n", name.c_str(),
                absl::StrJoin(got.sizes(), ", ").c_str(),
                absl::StrJoin(want.sizes(), ", ").c_str());
    return false;
  }
  const at::Tensor ref = want.to(at::kCPU, at::kDouble);
  const double err =
      (got.to(at::kCPU, at::kDouble) - ref).abs().max().item<double>() /
      ref.abs().max().item<double>();
  const bool ok = err <= tol;
  std::printf("%s: max|d|/max|ref| = %.3g (tol %.3g) %s\n", name.c_str(), err,
              tol, ok ? "ok" : "FAIL");
  return ok;
}

bool ReportExact(const std::string& name, const at::Tensor& got,
                 const at::Tensor& want) {
  const at::Tensor g = got.to(at::kCPU, at::kLong).flatten();
  const at::Tensor w = want.to(at::kCPU, at::kLong).flatten();
  const bool ok = g.sizes() == w.sizes() && g.equal(w);
  std::printf("%s: [%s] vs expected [%s] %s\n", name.c_str(),
              absl::StrJoin(std::vector<int64_t>(g.data_ptr<int64_t>(),
                                                 g.data_ptr<int64_t>() +
                                                     g.numel()),
                            ", ")
                  .c_str(),
              absl::StrJoin(std::vector<int64_t>(w.data_ptr<int64_t>(),
                                                 w.data_ptr<int64_t>() +
                                                     w.numel()),
                            ", ")
                  .c_str(),
              ok ? "equal" : "DIFFER");
  return ok;
}

}  // namespace dserve::models::testing
