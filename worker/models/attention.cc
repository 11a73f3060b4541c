#include "worker/models/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <ATen/ATen.h>

namespace dserve::models {
namespace {

// Upper bound on fp32 score elements materialised at once (~256 MiB).
constexpr int64_t kMaxScoreElements = int64_t{64} << 20;

// One query chunk. qh: (B, H, Sq, D) fp32; kh, vh: (B, H, Sk, D) fp32;
// mask: (B, 1, 1, Sk) bool or undefined.
void AttendChunk(const at::Tensor& qh, const at::Tensor& kh,
                 const at::Tensor& vh, const at::Tensor& mask, double scale,
                 at::Tensor& out, at::Tensor& lse) {
  at::Tensor scores = at::matmul(qh, kh.transpose(-1, -2)).mul_(scale);
  if (mask.defined()) {
    scores.masked_fill_(mask, -std::numeric_limits<float>::infinity());
  }
  lse = at::logsumexp(scores, -1);  // (B, H, Sq)
  // A fully masked row has lse = -inf; subtracting 0 instead keeps every
  // exp(-inf) = 0, so the row comes out as zeros rather than NaN.
  at::Tensor safe_lse = at::where(at::isinf(lse), at::zeros_like(lse), lse);
  at::Tensor probs = scores.sub_(safe_lse.unsqueeze(-1)).exp_();
  out = at::matmul(probs, vh);  // (B, H, Sq, D)
}

}  // namespace

AttentionOutput AttentionWithLse(const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v,
                                 const at::Tensor& key_padding_mask) {
  return AttentionWithLseChunked(q, k, v, key_padding_mask,
                                 kMaxScoreElements);
}

AttentionOutput AttentionWithLseChunked(const at::Tensor& q,
                                        const at::Tensor& k,
                                        const at::Tensor& v,
                                        const at::Tensor& key_padding_mask,
                                        int64_t max_score_elements) {
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
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  at::Tensor qh = q.to(at::kFloat).transpose(1, 2);  // (B, H, Sq, D)
  at::Tensor kh = k.to(at::kFloat).transpose(1, 2);
  at::Tensor vh = v.to(at::kFloat).transpose(1, 2);

  const int64_t per_query = std::max<int64_t>(1, b * h * sk);
  const int64_t chunk =
      std::max<int64_t>(1, std::min<int64_t>(sq, max_score_elements / per_query));
  at::Tensor out, lse;
  if (chunk >= sq) {
    AttendChunk(qh, kh, vh, mask, scale, out, lse);
  } else {
    std::vector<at::Tensor> outs, lses;
    for (int64_t start = 0; start < sq; start += chunk) {
      const int64_t len = std::min(chunk, sq - start);
      at::Tensor o, l;
      AttendChunk(qh.narrow(2, start, len), kh, vh, mask, scale, o, l);
      outs.push_back(o);
      lses.push_back(l);
    }
    out = at::cat(outs, 2);
    lse = at::cat(lses, 2);
  }
  return {out.transpose(1, 2).contiguous().to(q.scalar_type()), lse};
}

at::Tensor Attention(const at::Tensor& q, const at::Tensor& k,
                     const at::Tensor& v, const at::Tensor& key_padding_mask) {
  return AttentionWithLse(q, k, v, key_padding_mask).out;
}

}  // namespace dserve::models
