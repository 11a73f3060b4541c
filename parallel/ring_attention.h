#ifndef DSERVE_PARALLEL_RING_ATTENTION_H_
#define DSERVE_PARALLEL_RING_ATTENTION_H_

// Ring attention (TeleFuser's ring.py): each rank of the ring group holds
// one sequence block of q, k and v. K/V blocks (with their key padding mask)
// rotate around the ring by SendRecv; each rank attends its q block to every
// K/V block in turn and merges the partial outputs by their log-sum-exp
// (online softmax), so the result equals attention over the whole sequence.
//
// The block attention itself is injected (worker/models owns the kernel);
// this file owns only the rotation and the merge. Stateless functions; they
// block like the Communicator they drive. With a non-null `compression`
// (issue 15, --sp_compression=int8) each K and V block hop goes through the
// state's next slot (parallel/activation_codec.h: an int8 residual against
// the same hop of the previous step, after the exact warm-up; the masks stay
// exact); null is the exact rotation of today, bit for bit.

#include <functional>

#include "absl/status/statusor.h"
#include "parallel/activation_codec.h"
#include "parallel/communicator.h"
#include <ATen/core/Tensor.h>

namespace dserve::parallel {

// A partial attention result over one block of keys.
struct PartialAttention {
  at::Tensor out;  // (B, Sq, H, D)
  at::Tensor lse;  // (B, H, Sq) fp32; -inf where every key was masked
};

// Attention of q over one K/V block. `key_padding_mask` is undefined or a
// bool (B, Sk) tensor, true = padded key to ignore.
using BlockAttentionFn = std::function<PartialAttention(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& key_padding_mask)>;

// Combines two partial results over disjoint key sets into the result over
// their union. Computed in fp32; `out` keeps a's dtype. Rows where both are
// fully masked stay zero with lse -inf.
PartialAttention MergeAttentionStates(const PartialAttention& a,
                                      const PartialAttention& b);

// q, k, v: (B, S_block, H, D), this rank's sequence block (block index =
// group rank). key_padding_mask: undefined or bool (B, S_block) for this
// rank's keys. Returns the output for this rank's queries and its lse.
// Moves 2 * (size-1) K/V blocks (+ masks) per call through SendRecv.
absl::StatusOr<PartialAttention> RingAttention(
    Communicator& ring, const at::Tensor& q, const at::Tensor& k,
    const at::Tensor& v, const at::Tensor& key_padding_mask,
    const BlockAttentionFn& attention,
    SpCompressionState* compression = nullptr);

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_RING_ATTENTION_H_
