#ifndef DSERVE_WORKER_MODELS_TEXT_ENCODER_H_
#define DSERVE_WORKER_MODELS_TEXT_ENCODER_H_

// Prompt → text context for the DiT's cross-attention.
//
// Tokenizer: lowercases ASCII, splits on anything that is not a letter
// (bytes >= 0x80 count as letters so UTF-8 words stay whole), maps each word
// to its vocabulary id; words not in the vocabulary become "<unk>" and are
// reported back so the caller can tell the user.
//
// Encoder: a small pre-norm transformer (token + learned position
// embeddings; per layer LN → self-attention → residual, LN → GELU FFN →
// residual; final LayerNorm). Padding keys are masked and padding rows of
// the output are zero, like Wan's "trim to the real length, zero-pad to
// text_len". Weights live under the "text_encoder." prefix.
//
// Ownership / threading: both classes own their (refcounted) data and are
// immutable after construction; const methods are thread-safe and block
// until done.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

struct TokenizedText {
  std::vector<int64_t> ids;                // no padding
  std::vector<std::string> unknown_words;  // in order of appearance
};

class WordTokenizer {
 public:
  // `vocabulary[i]` is the word of id i; must contain "<pad>" and "<unk>".
  explicit WordTokenizer(std::vector<std::string> vocabulary);

  TokenizedText Encode(std::string_view text) const;
  int64_t pad_id() const { return pad_id_; }
  int64_t unk_id() const { return unk_id_; }

 private:
  std::vector<std::string> vocabulary_;
  std::vector<std::pair<std::string, int64_t>> sorted_;  // word → id
  int64_t pad_id_ = 0;
  int64_t unk_id_ = 1;
};

// Every text-encoder key (with the "text_encoder." prefix) and its shape.
std::vector<std::pair<std::string, std::vector<int64_t>>>
TextEncoderWeightShapes(const TextEncoderConfig& config);

struct TextEncoding {
  at::Tensor embeddings;  // [B, max_len, dim] fp32, zero beyond each length
  std::vector<int> lengths;
  std::vector<std::vector<std::string>> unknown_words;
};

class TextEncoder {
 public:
  // INVALID_ARGUMENT names the first missing or mis-shaped key.
  static absl::StatusOr<TextEncoder> Create(const PipelineConfig& config,
                                            const WeightMap& weights);

  const WordTokenizer& tokenizer() const { return tokenizer_; }
  int max_len() const { return config_.max_len; }

  // INVALID_ARGUMENT if a prompt has more than max_len words (the error
  // names `field`, e.g. "prompt", the word count and the limit).
  absl::StatusOr<TextEncoding> Encode(const std::vector<std::string>& prompts,
                                      const std::string& field = "prompt")
      const;

 private:
  struct Linear {
    at::Tensor weight, bias;
  };
  struct Layer {
    at::Tensor norm1_weight, norm1_bias;
    Linear q, k, v, o;
    at::Tensor norm2_weight, norm2_bias;
    Linear ffn0, ffn2;
  };
  TextEncoder(TextEncoderConfig config, WordTokenizer tokenizer)
      : config_(config), tokenizer_(std::move(tokenizer)) {}

  TextEncoderConfig config_;
  WordTokenizer tokenizer_;
  at::Tensor token_embedding_;     // [V, dim]
  at::Tensor position_embedding_;  // [max_len, dim]
  std::vector<Layer> layers_;
  at::Tensor norm_weight_, norm_bias_;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_TEXT_ENCODER_H_
