#ifndef DSERVE_WORKER_MODELS_PROMPT_ENCODER_H_
#define DSERVE_WORKER_MODELS_PROMPT_ENCODER_H_

// How a pipeline turns prompts into the DiT's text context, behind one
// small interface so the Pipeline does not care which model it serves:
//   word  the built-in model's TextEncoder (word vocabulary);
//   umt5  Wan2.1's CleanPrompt -> Umt5Tokenizer -> Umt5Encoder, each
//         prompt's output trimmed to its real tokens and zero-padded to the
//         DiT's text_len (wan_prompt_encoder.h).
//
// Ownership / threading: an encoder owns its weights and is immutable after
// construction; Encode is const, thread-safe and blocks until computed.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/text_encoder.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

struct PromptEncoding {
  // [B, text_len, text_dim] float32, rows past each prompt's length zero.
  at::Tensor context;
  // Per prompt: words the vocabulary did not know (word encoder only; a
  // rank that receives broadcast embeddings gets empty lists).
  std::vector<std::vector<std::string>> unknown_words;
  // Texts of this call answered by / missing from an embedding cache
  // (cached_prompt_encoder.h); both 0 without a cache.
  int cache_hits = 0;
  int cache_misses = 0;
};

class PromptEncoder {
 public:
  virtual ~PromptEncoder() = default;
  // `field` ("prompt" / "negative_prompt") names the request field in
  // errors. The context is on the encoder's device.
  virtual absl::StatusOr<PromptEncoding> Encode(
      const std::vector<std::string>& texts, const std::string& field) const = 0;
};

// The built-in model's word-level encoder (CPU).
std::unique_ptr<PromptEncoder> MakeWordPromptEncoder(TextEncoder encoder);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_PROMPT_ENCODER_H_
