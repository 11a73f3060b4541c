#ifndef DSERVE_WORKER_MODELS_WAN_PROMPT_ENCODER_H_
#define DSERVE_WORKER_MODELS_WAN_PROMPT_ENCODER_H_

// Wan2.1's prompt path as a PromptEncoder: CleanPrompt (ftfy subset,
// html.unescape twice, whitespace collapse) -> Umt5Tokenizer (SentencePiece
// + </s>, truncated to text_len) -> Umt5Encoder over each prompt's real
// tokens -> rows [0, n) of a zero [B, text_len, dim] float32 context.
//
// Ownership / threading: owns the tokenizer and the encoder (its weights on
// numerics.device); immutable; Encode is thread-safe and blocks.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include "worker/models/prompt_encoder.h"
#include "worker/models/text/umt5_encoder.h"

namespace dserve::models {

// `t5_weights`: umT5 under models_t5_umt5-xxl-enc-bf16.pth names (no
// prefix); `spiece_model`: the path of spiece.model; `text_len` and
// `text_dim`: the DiT's (INVALID_ARGUMENT if the encoder's dim differs).
absl::StatusOr<std::unique_ptr<PromptEncoder>> MakeWanPromptEncoder(
    const WeightMap& t5_weights, const std::string& spiece_model,
    int text_len, int text_dim, const Umt5Numerics& numerics);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_WAN_PROMPT_ENCODER_H_
