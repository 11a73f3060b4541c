#include "parallel/ring_attention.h"

#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status_macros.h"
#include "parallel/communicator.h"
#include <ATen/ATen.h>

namespace dserve::parallel {
namespace {

// exp(lse_part - lse_total) as a (B, Sq, H, 1) weight, 0 where the total is
// -inf (no unmasked key at all), which exp would turn into NaN.
at::Tensor MergeWeight(const at::Tensor& lse_part, const at::Tensor& lse_total) {
  at::Tensor w = at::exp(lse_part - lse_total);
  w = at::where(at::isneginf(lse_total), at::zeros_like(w), w);
  return w.transpose(1, 2).unsqueeze(-1);
}

}  // namespace

PartialAttention MergeAttentionStates(const PartialAttention& a,
                                      const PartialAttention& b) {
  at::Tensor lse_a = a.lse.to(at::kFloat);
  at::Tensor lse_b = b.lse.to(at::kFloat);
  at::Tensor lse = at::logaddexp(lse_a, lse_b);
  at::Tensor out = a.out.to(at::kFloat) * MergeWeight(lse_a, lse) +
                   b.out.to(at::kFloat) * MergeWeight(lse_b, lse);
  return {out.to(a.out.scalar_type()), lse};
}

absl::StatusOr<PartialAttention> RingAttention(
    Communicator& ring, const at::Tensor& q, const at::Tensor& k,
    const at::Tensor& v, const at::Tensor& key_padding_mask,
    const BlockAttentionFn& attention, SpCompressionState* compression) {
  if (q.dim() != 4 || k.dim() != 4 || k.sizes() != v.sizes()) {
    return absl::InvalidArgumentError(
        "RingAttention: q, k and v must be (B, S_block, H, D), k and v of "
        "the same shape");
  }
  const int n = ring.size();
  const int rank = ring.rank();
  const int next = (rank + 1) % n;
  const int prev = (rank + n - 1) % n;
  // Masks travel as uint8 (every backend moves bytes); an all-false mask
  // stands in for "no mask" so that every rank sends the same shapes.
  at::Tensor mask = key_padding_mask.defined()
                        ? key_padding_mask.to(at::kByte).contiguous()
                        : at::zeros({k.size(0), k.size(1)}, at::kByte);
  at::Tensor k_block = k.contiguous();
  at::Tensor v_block = v.contiguous();

  PartialAttention acc;
  for (int step = 0; step < n; ++step) {
    // Start from the block we hold; the next one is fetched after use. (A
    // GPU backend overlaps the two; on CPU the exchange is synchronous.)
    PartialAttention part =
        attention(q, k_block, v_block, mask.to(at::kBool));
    acc = step == 0 ? std::move(part) : MergeAttentionStates(acc, part);
    if (step == n - 1) break;
    at::Tensor k_next, v_next;
    if (compression != nullptr) {
      // Channels: the H·D features of a token.
      const int64_t channels = k_block.size(2) * k_block.size(3);
      ASSIGN_OR_RETURN(k_next, CompressedSendRecv(ring, k_block, next, prev,
                                                  channels, *compression));
      ASSIGN_OR_RETURN(v_next, CompressedSendRecv(ring, v_block, next, prev,
                                                  channels, *compression));
    } else {
      k_next = at::empty_like(k_block);
      v_next = at::empty_like(v_block);
      RETURN_IF_ERROR(ring.SendRecv(k_block, next, k_next, prev));
      RETURN_IF_ERROR(ring.SendRecv(v_block, next, v_next, prev));
    }
    at::Tensor mask_next = at::empty_like(mask);
    RETURN_IF_ERROR(ring.SendRecv(mask, next, mask_next, prev));
    k_block = std::move(k_next);
    v_block = std::move(v_next);
    mask = std::move(mask_next);
  }
  return acc;
}

}  // namespace dserve::parallel
