#include "worker/models/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <ATen/ATen.h>

// LibTorch >= 2.0 has fused attention kernels (flash / memory-efficient /
// cuDNN behind at::scaled_dot_product_attention). Debian's 1.13 has neither
// them nor <torch/version.h>, so the CPU build keeps the math path below.
#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
#define DSERVE_HAS_FUSED_SDPA 1
#else
#define DSERVE_HAS_FUSED_SDPA 0
#endif

namespace dserve::models {
namespace {

// Upper bound on fp32 score elements materialised at once (~256 MiB).
constexpr int64_t kMaxScoreElements = int64_t{64} << 20;

// One query chunk. qh: (B, H, Sq, D) fp32; kh, vh: (B, H, Sk, D) fp32;
// mask: (B, 1, 1, Sk) bool or undefined. `lse` is filled only if non-null:
// the plain path uses the fused softmax kernel, which is ~4x cheaper than
// logsumexp + exp on CPU.
void AttendChunk(const at::Tensor& qh, const at::Tensor& kh,
                 const at::Tensor& vh, const at::Tensor& mask, at::Tensor& out,
                 at::Tensor* lse) {
  // qh is pre-scaled by 1/√D (cheaper than scaling the scores).
  at::Tensor scores = at::matmul(qh, kh.transpose(-1, -2));
  if (mask.defined()) {
    scores.masked_fill_(mask, -std::numeric_limits<float>::infinity());
  }
  if (lse == nullptr) {
    at::Tensor probs = at::softmax(scores, -1);
    // A fully masked row is NaN after softmax; it must read as zero.
    // Out of place: softmax's backward needs its own output (the trainer
    // differentiates through this).
    if (mask.defined()) probs = at::nan_to_num(probs, 0.0);
    out = at::matmul(probs, vh);
    return;
  }
  at::Tensor max = std::get<0>(scores.max(-1, /*keepdim=*/true)).detach();
  // Fully masked rows have max = -inf; using 0 keeps exp(-inf - 0) = 0.
  max = max.masked_fill(at::isinf(max), 0.0);
  at::Tensor exps = at::exp(scores - max);
  at::Tensor sum = exps.sum(-1, /*keepdim=*/true);
  *lse = (max + at::log(sum)).squeeze(-1);  // log 0 = -inf when all masked
  at::Tensor probs = exps / sum.masked_fill(sum == 0, 1.0);
  out = at::matmul(probs, vh);  // (B, H, Sq, D)
}

#if DSERVE_HAS_FUSED_SDPA
// The fused GPU kernels, for CUDA tensors only (on the CPU the chunked math
// path is as fast and is what every test pins down). Returns false when no
// fused kernel fits and the math path must run: the flash kernel, the one
// that returns the log-sum-exp, takes no mask and only half precision.
bool FusedAttend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                 const at::Tensor& key_padding_mask, bool want_lse,
                 AttentionOutput& result) {
  if (!q.is_cuda()) return false;
  const bool half = q.scalar_type() == at::kBFloat16 ||
                    q.scalar_type() == at::kHalf;
  if (want_lse && (key_padding_mask.defined() || !half)) return false;
  // (B, S, H, D) → (B, H, S, D), the layout the kernels take.
  at::Tensor qh = q.transpose(1, 2);
  at::Tensor kh = k.to(q.scalar_type()).transpose(1, 2);
  at::Tensor vh = v.to(q.scalar_type()).transpose(1, 2);
  at::Tensor out;
  if (want_lse) {
    // Outputs: (out, logsumexp (B, H, Sq) fp32, cum_seq_q, cum_seq_k,
    // max_q, max_k, philox_seed, philox_offset, debug_attn_mask).
    auto r = at::_scaled_dot_product_flash_attention(
        qh, kh, vh, /*dropout_p=*/0.0, /*is_causal=*/false,
        /*return_debug_mask=*/false);
    out = std::get<0>(r);
    result.lse = std::get<1>(r);
  } else {
    c10::optional<at::Tensor> mask;
    if (key_padding_mask.defined()) {
      // SDPA's boolean mask marks the keys that TAKE part.
      mask = key_padding_mask.logical_not().view(
          {q.size(0), 1, 1, k.size(1)});
    }
    out = at::scaled_dot_product_attention(qh, kh, vh, mask);
    // A query whose keys are all padded reads as zero (the contract above).
    if (key_padding_mask.defined()) out = at::nan_to_num(out, 0.0);
  }
  result.out = out.transpose(1, 2).contiguous();
  return true;
}
#endif

AttentionOutput Attend(const at::Tensor& q, const at::Tensor& k,
                       const at::Tensor& v, const at::Tensor& key_padding_mask,
                       int64_t max_score_elements, bool want_lse) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "Attention expects (B, S, H, D) tensors, got q ", q.sizes(),
              " k ", k.sizes(), " v ", v.sizes());
  TORCH_CHECK(k.sizes() == v.sizes(), "Attention: k ", k.sizes(),
              " and v ", v.sizes(), " differ");
  TORCH_CHECK(q.size(0) == k.size(0) && q.size(2) == k.size(2) &&
                  q.size(3) == k.size(3),
              "Attention: q ", q.sizes(), " does not match k ", k.sizes());
  const int64_t b = q.size(0), sq = q.size(1), h = q.size(2), d = q.size(3);
  const int64_t sk = k.size(1);
  at::Tensor mask;
  if (key_padding_mask.defined()) {
    TORCH_CHECK(key_padding_mask.scalar_type() == at::kBool &&
                    key_padding_mask.dim() == 2 &&
                    key_padding_mask.size(0) == b &&
                    key_padding_mask.size(1) == sk,
                "Attention: key_padding_mask must be bool (", b, ", ", sk,
                "), got ", key_padding_mask.sizes());
    mask = key_padding_mask.view({b, 1, 1, sk});
  }
#if DSERVE_HAS_FUSED_SDPA
  AttentionOutput fused;
  if (FusedAttend(q, k, v, key_padding_mask, want_lse, fused)) return fused;
#endif
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  at::Tensor qh = q.to(at::kFloat).mul(scale).transpose(1, 2);  // (B,H,Sq,D)
  at::Tensor kh = k.to(at::kFloat).transpose(1, 2);
  at::Tensor vh = v.to(at::kFloat).transpose(1, 2);

  const int64_t per_query = std::max<int64_t>(1, b * h * sk);
  const int64_t chunk =
      std::max<int64_t>(1, std::min<int64_t>(sq, max_score_elements / per_query));
  at::Tensor out, lse;
  if (chunk >= sq) {
    AttendChunk(qh, kh, vh, mask, out, want_lse ? &lse : nullptr);
  } else {
    std::vector<at::Tensor> outs, lses;
    for (int64_t start = 0; start < sq; start += chunk) {
      const int64_t len = std::min(chunk, sq - start);
      at::Tensor o, l;
      AttendChunk(qh.narrow(2, start, len), kh, vh, mask, o,
                  want_lse ? &l : nullptr);
      outs.push_back(o);
      if (want_lse) lses.push_back(l);
    }
    out = at::cat(outs, 2);
    if (want_lse) lse = at::cat(lses, 2);
  }
  return {out.transpose(1, 2).contiguous().to(q.scalar_type()), lse};
}

}  // namespace

AttentionOutput AttentionWithLse(const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v,
                                 const at::Tensor& key_padding_mask) {
  return Attend(q, k, v, key_padding_mask, kMaxScoreElements,
                /*want_lse=*/true);
}

AttentionOutput AttentionWithLseChunked(const at::Tensor& q,
                                        const at::Tensor& k,
                                        const at::Tensor& v,
                                        const at::Tensor& key_padding_mask,
                                        int64_t max_score_elements) {
  return Attend(q, k, v, key_padding_mask, max_score_elements,
                /*want_lse=*/true);
}

at::Tensor Attention(const at::Tensor& q, const at::Tensor& k,
                     const at::Tensor& v, const at::Tensor& key_padding_mask) {
  return Attend(q, k, v, key_padding_mask, kMaxScoreElements,
                /*want_lse=*/false)
      .out;
}

}  // namespace dserve::models
