#ifndef DSERVE_WORKER_MODELS_TESTING_WAN_CASE_H_
#define DSERVE_WORKER_MODELS_TESTING_WAN_CASE_H_

// Helpers of the C++ checkers of the Wan reference cases written by
// tools/reference/wan_reference.py (contract: /work/notes/wan_contract.md):
// the case's DiT config, the weights under a prefix, and the comparison
// line each checker prints. Test-only; pure functions apart from printing.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include "worker/models/prompt_encoder.h"
#include "worker/models/text/umt5_encoder.h"
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace dserve::models::testing {

// The case's `__metadata__.config` JSON object.
absl::StatusOr<nlohmann::json> CaseConfig(const std::string& case_path);

// {"dim","heads","ffn_dim","layers","freq_dim","text_dim","text_len",
//  "in_dim","out_dim","patch"} -> DiTConfig (eps 1e-6).
absl::StatusOr<DiTConfig> DiTConfigFromCase(const nlohmann::json& dit);

// Keys of `all` under `prefix`, prefix removed.
WeightMap WithPrefix(const WeightMap& all, const std::string& prefix);

// A PromptEncoder over the real umT5 encoder that skips the tokenizer: the
// "text" of a prompt is a key of `ids_of` (the reference cases pass token
// ids, not text). Unknown keys are INVALID_ARGUMENT.
std::unique_ptr<PromptEncoder> MakeIdsPromptEncoder(
    std::unique_ptr<Umt5Encoder> encoder,
    std::map<std::string, std::vector<int64_t>> ids_of, int text_len);

// The int64 values of a 1-D tensor.
std::vector<int64_t> Ids(const at::Tensor& t);

// Prints "<name>: max|d|/max|ref| = X (tol T) ok|FAIL" (or the shape
// mismatch) and returns whether got is within tol of want.
bool ReportRelative(const std::string& name, const at::Tensor& got,
                    const at::Tensor& want, double tol);

// Prints "<name>: equal" or the first difference of two int64 vectors given
// as tensors; returns whether they are equal.
bool ReportExact(const std::string& name, const at::Tensor& got,
                 const at::Tensor& want);

}  // namespace dserve::models::testing

#endif  // DSERVE_WORKER_MODELS_TESTING_WAN_CASE_H_
