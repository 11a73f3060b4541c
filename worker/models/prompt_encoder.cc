#include "worker/models/prompt_encoder.h"

#include <utility>

namespace dserve::models {
namespace {

class WordPromptEncoder : public PromptEncoder {
 public:
  explicit WordPromptEncoder(TextEncoder encoder)
      : encoder_(std::move(encoder)) {}

  absl::StatusOr<PromptEncoding> Encode(
      const std::vector<std::string>& texts,
      const std::string& field) const override {
    absl::StatusOr<TextEncoding> e = encoder_.Encode(texts, field);
    if (!e.ok()) return e.status();
    return PromptEncoding{e->embeddings, std::move(e->unknown_words)};
  }

 private:
  TextEncoder encoder_;
};

}  // namespace

std::unique_ptr<PromptEncoder> MakeWordPromptEncoder(TextEncoder encoder) {
  return std::make_unique<WordPromptEncoder>(std::move(encoder));
}

}  // namespace dserve::models
