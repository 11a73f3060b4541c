#ifndef DSERVE_WORKER_MODELS_ATTENTION_H_
#define DSERVE_WORKER_MODELS_ATTENTION_H_

// The attention core: softmax(q kᵀ / √D) v, with optional key padding.
// Layout everywhere is (B, S, H, D): batch, sequence, heads, head_dim —
// the layout Ulysses all-to-alls and Ring attention exchange.
//
// Numerics: scores, softmax and log-sum-exp are computed in fp32 whatever
// the input dtype; the output has the dtype of `q`. On CUDA with LibTorch
// >= 2.0 the fused SDPA kernels run (flash for the log-sum-exp variant when
// there is no mask and q is bf16/fp16; otherwise the math path below). Queries are processed
// in chunks so the score matrix stays bounded (long video sequences), which
// does not change the result.
//
// Stateless, thread-safe; calls block until the result is computed.

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace dserve::models {

struct AttentionOutput {
  // (B, Sq, H, D), dtype of q.
  at::Tensor out;
  // (B, H, Sq) fp32: log Σ_k exp(q·k/√D) over the unmasked keys; -inf for
  // a query whose keys are all masked (its `out` row is then zero).
  at::Tensor lse;
};

// q: (B, Sq, H, D); k, v: (B, Sk, H, D). `key_padding_mask`, if defined, is
// a bool (B, Sk) tensor where true marks a PADDED key that must be ignored
// (PyTorch's nn.MultiheadAttention convention).
at::Tensor Attention(const at::Tensor& q, const at::Tensor& k,
                     const at::Tensor& v,
                     const at::Tensor& key_padding_mask = at::Tensor());

// Same, also returning the log-sum-exp needed to merge partial results
// computed over disjoint key blocks (Ring attention, online softmax).
AttentionOutput AttentionWithLse(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& key_padding_mask = at::Tensor());

// AttentionWithLse with an explicit bound on the fp32 score elements held
// at once (queries are split into chunks to respect it); exposed so tests
// can check that chunking does not change the result.
AttentionOutput AttentionWithLseChunked(const at::Tensor& q,
                                        const at::Tensor& k,
                                        const at::Tensor& v,
                                        const at::Tensor& key_padding_mask,
                                        int64_t max_score_elements);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_ATTENTION_H_
