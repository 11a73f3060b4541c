#ifndef DSERVE_WORKER_MODELS_CACHED_PROMPT_ENCODER_H_
#define DSERVE_WORKER_MODELS_CACHED_PROMPT_ENCODER_H_

// A PromptEncoder that answers repeated prompts from a TextEmbeddingCache
// and runs the wrapped encoder only for the rest.
//
// Encode(texts): each text is looked up (key = `identity` + the raw text);
// each distinct miss is encoded ALONE by the inner encoder, in order of
// first appearance, and stored; the result is a NEW [B, text_len, text_dim]
// tensor stacked from the rows, so callers never alias cache memory.
// PromptEncoding::cache_hits/_misses count the texts of this call (a text
// that appears twice in one cold call is one miss and one hit). Errors are
// the inner encoder's for that one text.
//
// Why alone: an entry must not depend on the batch that first asked for
// it. umT5 encodes each prompt alone anyway (Umt5Encoder::EncodeContext),
// so a cached Wan embedding is bit-identical to the uncached path; the
// built-in word encoder runs a batch through one matmul, whose rows round
// differently (1 ulp) with other batch neighbours, so with the cache on a
// batched plan of the default model may differ from the cache-off path in
// the last bits (single-item plans are identical).
//
// Ownership / threading: owns the inner encoder, shares the cache (which may
// serve several models: the key names the model). Encode is thread-safe
// when the inner encoder's is (the cache locks itself); it blocks while the
// inner encoder computes.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/prompt_encoder.h"
#include "worker/models/text_embedding_cache.h"

namespace dserve::models {

// `identity`: every key field except the text (model, encoder kind,
// max_len, dtype, device). `pinned`: texts encoded now and pinned in the
// cache (a model's default negative prompt); their errors fail the call.
absl::StatusOr<std::unique_ptr<PromptEncoder>> MakeCachingPromptEncoder(
    std::unique_ptr<PromptEncoder> inner,
    std::shared_ptr<TextEmbeddingCache> cache, TextEmbeddingKey identity,
    const std::vector<std::string>& pinned);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_CACHED_PROMPT_ENCODER_H_
