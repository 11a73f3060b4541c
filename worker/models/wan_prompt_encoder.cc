#include "worker/models/wan_prompt_encoder.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/models/text/umt5_tokenizer.h"

namespace dserve::models {
namespace {

class WanPromptEncoder : public PromptEncoder {
 public:
  WanPromptEncoder(std::unique_ptr<Umt5Tokenizer> tokenizer,
                   std::unique_ptr<Umt5Encoder> encoder, int text_len)
      : tokenizer_(std::move(tokenizer)),
        encoder_(std::move(encoder)),
        text_len_(text_len) {}

  absl::StatusOr<PromptEncoding> Encode(
      const std::vector<std::string>& texts,
      const std::string& field) const override {
    std::vector<std::vector<int64_t>> ids;
    for (size_t i = 0; i < texts.size(); ++i) {
      absl::StatusOr<Umt5Tokens> tokens =
          tokenizer_->EncodePrompt(texts[i], text_len_);
      if (!tokens.ok()) {
        return absl::Status(tokens.status().code(),
                            absl::StrCat(field, "[", i, "]: ",
                                         tokens.status().message()));
      }
      ids.push_back(std::move(tokens->ids));
    }
    PromptEncoding out;
    ASSIGN_OR_RETURN(out.context, encoder_->EncodeContext(ids, text_len_));
    out.unknown_words.resize(texts.size());
    return out;
  }

 private:
  std::unique_ptr<Umt5Tokenizer> tokenizer_;
  std::unique_ptr<Umt5Encoder> encoder_;
  int text_len_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PromptEncoder>> MakeWanPromptEncoder(
    const WeightMap& t5_weights, const std::string& spiece_model,
    int text_len, int text_dim, const Umt5Numerics& numerics) {
  ASSIGN_OR_RETURN(std::unique_ptr<Umt5Tokenizer> tokenizer,
                   Umt5Tokenizer::Load(spiece_model));
  absl::StatusOr<std::unique_ptr<Umt5Encoder>> encoder =
      Umt5Encoder::Create(t5_weights, numerics);
  if (!encoder.ok()) {
    return absl::Status(encoder.status().code(),
                        absl::StrCat("umT5: ", encoder.status().message()));
  }
  if ((*encoder)->config().dim != text_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "umT5: dim = ", (*encoder)->config().dim,
        " (token_embedding.weight columns) must equal the DiT's text_dim = ",
        text_dim));
  }
  return std::unique_ptr<PromptEncoder>(std::make_unique<WanPromptEncoder>(
      std::move(tokenizer), *std::move(encoder), text_len));
}

}  // namespace dserve::models
