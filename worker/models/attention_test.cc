#include "worker/models/attention.h"

#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace dserve::models {
namespace {

// softmax(q kᵀ/√d) v computed head by head with plain ops; padded keys get
// -inf scores.
at::Tensor NaiveAttention(const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& v, const at::Tensor& pad,
                          at::Tensor* lse) {
  const int64_t b = q.size(0), h = q.size(2), d = q.size(3);
  at::Tensor out = at::zeros_like(q);
  *lse = at::zeros({b, h, q.size(1)});
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j < h; ++j) {
      at::Tensor qi = q[i].select(1, j);  // [Sq, D]
      at::Tensor ki = k[i].select(1, j);
      at::Tensor vi = v[i].select(1, j);
      at::Tensor s = qi.matmul(ki.t()) / std::sqrt(static_cast<double>(d));
      if (pad.defined()) {
        s = s.masked_fill(pad[i].unsqueeze(0), -INFINITY);
      }
      (*lse)[i][j].copy_(at::logsumexp(s, -1));
      out[i].select(1, j).copy_(at::softmax(s, -1).matmul(vi));
    }
  }
  return out;
}

TEST(AttentionTest, MatchesNaiveSoftmax) {
  at::manual_seed(1);
  at::Tensor q = at::randn({2, 5, 3, 8});
  at::Tensor k = at::randn({2, 7, 3, 8});
  at::Tensor v = at::randn({2, 7, 3, 8});
  at::Tensor lse;
  at::Tensor want = NaiveAttention(q, k, v, at::Tensor(), &lse);
  AttentionOutput got = AttentionWithLse(q, k, v);
  EXPECT_TRUE(at::allclose(got.out, want, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(got.lse, lse, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(Attention(q, k, v), want, 1e-5, 1e-5));
}

TEST(AttentionTest, MaskedKeysAreIgnored) {
  at::manual_seed(2);
  at::Tensor q = at::randn({2, 4, 2, 8});
  at::Tensor k = at::randn({2, 6, 2, 8});
  at::Tensor v = at::randn({2, 6, 2, 8});
  at::Tensor pad = at::zeros({2, 6}, at::kBool);
  pad[0].narrow(0, 4, 2).fill_(true);
  pad[1].narrow(0, 5, 1).fill_(true);
  at::Tensor out = Attention(q, k, v, pad);
  // Changing padded keys/values must not change anything.
  at::Tensor k2 = k.clone(), v2 = v.clone();
  k2[0].narrow(0, 4, 2).fill_(100.0);
  v2[0].narrow(0, 4, 2).fill_(-50.0);
  k2[1].narrow(0, 5, 1).fill_(7.0);
  EXPECT_TRUE(at::allclose(Attention(q, k2, v2, pad), out, 1e-6, 1e-6));
  // And equals attention over the real keys only.
  at::Tensor item0 = Attention(q.narrow(0, 0, 1), k.narrow(0, 0, 1).narrow(1, 0, 4),
                               v.narrow(0, 0, 1).narrow(1, 0, 4));
  EXPECT_TRUE(at::allclose(out.narrow(0, 0, 1), item0, 1e-5, 1e-5));
  at::Tensor lse;
  EXPECT_TRUE(at::allclose(out, NaiveAttention(q, k, v, pad, &lse), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(AttentionWithLse(q, k, v, pad).lse, lse, 1e-5, 1e-5));
}

TEST(AttentionTest, FullyMaskedRowIsZeroWithMinusInfLse) {
  at::Tensor q = at::randn({1, 3, 1, 4});
  at::Tensor k = at::randn({1, 2, 1, 4});
  at::Tensor pad = at::ones({1, 2}, at::kBool);
  AttentionOutput r = AttentionWithLse(q, k, k, pad);
  EXPECT_TRUE(at::all(r.out == 0).item<bool>());
  EXPECT_TRUE(at::all(at::isinf(r.lse)).item<bool>());
  EXPECT_FALSE(at::any(at::isnan(r.out)).item<bool>());
  // The plain path (fused softmax) must agree.
  at::Tensor plain = Attention(q, k, k, pad);
  EXPECT_TRUE(at::all(plain == 0).item<bool>());
}

TEST(AttentionTest, LseMergesDisjointKeyBlocks) {
  // What Ring attention relies on: results over two key halves merged with
  // their LSE equal attention over all keys.
  at::manual_seed(3);
  at::Tensor q = at::randn({1, 4, 2, 8});
  at::Tensor k = at::randn({1, 6, 2, 8});
  at::Tensor v = at::randn({1, 6, 2, 8});
  AttentionOutput a = AttentionWithLse(q, k.narrow(1, 0, 3), v.narrow(1, 0, 3));
  AttentionOutput b = AttentionWithLse(q, k.narrow(1, 3, 3), v.narrow(1, 3, 3));
  at::Tensor lse = at::logaddexp(a.lse, b.lse);            // [B, H, S]
  at::Tensor wa = at::exp(a.lse - lse).transpose(1, 2).unsqueeze(-1);
  at::Tensor wb = at::exp(b.lse - lse).transpose(1, 2).unsqueeze(-1);
  at::Tensor merged = a.out * wa + b.out * wb;
  EXPECT_TRUE(at::allclose(merged, Attention(q, k, v), 1e-5, 1e-5));
}

TEST(AttentionTest, QueryChunkingDoesNotChangeTheResult) {
  at::manual_seed(4);
  at::Tensor q = at::randn({2, 9, 2, 8});
  at::Tensor k = at::randn({2, 5, 2, 8});
  at::Tensor v = at::randn({2, 5, 2, 8});
  at::Tensor pad = at::zeros({2, 5}, at::kBool);
  pad[1][4] = true;
  AttentionOutput whole = AttentionWithLse(q, k, v, pad);
  // 2·2·5 = 20 score elements per query row: 40 → chunks of 2 queries.
  AttentionOutput chunked = AttentionWithLseChunked(q, k, v, pad, 40);
  EXPECT_TRUE(at::allclose(chunked.out, whole.out, 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(chunked.lse, whole.lse, 1e-6, 1e-6));
}

TEST(AttentionTest, BothPathsAreDifferentiable) {
  at::manual_seed(5);
  at::Tensor q = at::randn({1, 3, 2, 4}).requires_grad_(true);
  at::Tensor k = at::randn({1, 5, 2, 4}).requires_grad_(true);
  at::Tensor v = at::randn({1, 5, 2, 4}).requires_grad_(true);
  at::Tensor pad = at::zeros({1, 5}, at::kBool);
  pad[0][4] = true;
  Attention(q, k, v, pad).sum().backward();
  at::Tensor gq = q.grad().clone();
  q.grad().zero_();
  AttentionOutput r = AttentionWithLse(q, k, v, pad);
  r.out.sum().backward();
  EXPECT_TRUE(at::allclose(q.grad(), gq, 1e-5, 1e-5));
  EXPECT_FALSE(at::any(at::isnan(gq)).item<bool>());
}

}  // namespace
}  // namespace dserve::models
