#include "worker/models/cached_prompt_encoder.h"

#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

class CachingPromptEncoder : public PromptEncoder {
 public:
  CachingPromptEncoder(std::unique_ptr<PromptEncoder> inner,
                       std::shared_ptr<TextEmbeddingCache> cache,
                       TextEmbeddingKey identity)
      : inner_(std::move(inner)),
        cache_(std::move(cache)),
        identity_(std::move(identity)) {}

  absl::StatusOr<PromptEncoding> Encode(
      const std::vector<std::string>& texts,
      const std::string& field) const override {
    return EncodeAndStore(texts, field, /*pin=*/false);
  }

  absl::Status Pin(const std::vector<std::string>& texts) const {
    return EncodeAndStore(texts, "default negative_prompt", /*pin=*/true)
        .status();
  }

 private:
  TextEmbeddingKey KeyOf(const std::string& text) const {
    TextEmbeddingKey key = identity_;
    key.text = text;
    return key;
  }

  absl::StatusOr<PromptEncoding> EncodeAndStore(
      const std::vector<std::string>& texts, const std::string& field,
      bool pin) const {
    const size_t n = texts.size();
    std::vector<std::optional<TextEmbedding>> rows(n);
    // Distinct texts the cache lacks, in order of first appearance.
    std::vector<std::string> missing;
    absl::flat_hash_map<std::string, size_t> missing_index;
    PromptEncoding out;
    for (size_t i = 0; i < n; ++i) {
      if (!pin) rows[i] = cache_->Lookup(KeyOf(texts[i]));
      if (rows[i].has_value()) {
        ++out.cache_hits;
      } else if (missing_index.emplace(texts[i], missing.size()).second) {
        missing.push_back(texts[i]);
        ++out.cache_misses;
      } else {
        ++out.cache_hits;  // a repeat inside this call
      }
    }
    // Each text alone: its entry is then the same whatever batch first
    // asked for it (a batched matmul may round a row differently).
    std::vector<TextEmbedding> encoded(missing.size());
    for (size_t j = 0; j < missing.size(); ++j) {
      ASSIGN_OR_RETURN(PromptEncoding fresh,
                       inner_->Encode({missing[j]}, field));
      RETURN_IF_ERROR(CatchTorch("text embedding cache", [&] {
        encoded[j].embedding = fresh.context[0];
      }));
      if (!fresh.unknown_words.empty()) {
        encoded[j].unknown_words = std::move(fresh.unknown_words[0]);
      }
    }
    for (size_t j = 0; j < missing.size(); ++j) {
      cache_->Insert(KeyOf(missing[j]), encoded[j], pin);
    }
    for (size_t i = 0; i < n; ++i) {
      if (!rows[i].has_value()) rows[i] = encoded[missing_index[texts[i]]];
    }
    RETURN_IF_ERROR(CatchTorch("text embedding cache", [&] {
      std::vector<at::Tensor> batch;
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(rows[i]->embedding);
        out.unknown_words.push_back(rows[i]->unknown_words);
      }
      if (!batch.empty()) out.context = at::stack(batch);
    }));
    return out;
  }

  std::unique_ptr<PromptEncoder> inner_;
  std::shared_ptr<TextEmbeddingCache> cache_;
  TextEmbeddingKey identity_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PromptEncoder>> MakeCachingPromptEncoder(
    std::unique_ptr<PromptEncoder> inner,
    std::shared_ptr<TextEmbeddingCache> cache, TextEmbeddingKey identity,
    const std::vector<std::string>& pinned) {
  if (inner == nullptr || cache == nullptr) {
    return absl::InvalidArgumentError(
        "MakeCachingPromptEncoder: the inner encoder and the cache are "
        "required");
  }
  auto encoder = std::make_unique<CachingPromptEncoder>(
      std::move(inner), std::move(cache), std::move(identity));
  if (!pinned.empty()) RETURN_IF_ERROR(encoder->Pin(pinned));
  return std::unique_ptr<PromptEncoder>(std::move(encoder));
}

}  // namespace dserve::models
