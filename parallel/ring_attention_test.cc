#include "parallel/ring_attention.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "parallel/communicator.h"
#include "parallel/sequence_shard.h"
#include "parallel/testing/fake_communicator.h"
#include <ATen/ATen.h>

namespace dserve::parallel {
namespace {

// Plain softmax attention with LSE, the unsharded reference (and the block
// kernel the ring drives). q: (B, Sq, H, D); k, v: (B, Sk, H, D).
PartialAttention Reference(const at::Tensor& q, const at::Tensor& k,
                           const at::Tensor& v, const at::Tensor& mask) {
  at::Tensor scores = at::einsum("bqhd,bkhd->bhqk", {q, k}) /
                      std::sqrt(static_cast<double>(q.size(3)));
  if (mask.defined()) {
    scores = scores.masked_fill(mask.view({mask.size(0), 1, 1, mask.size(1)}),
                                -std::numeric_limits<double>::infinity());
  }
  at::Tensor lse = at::logsumexp(scores, -1);
  at::Tensor p = at::exp(scores - lse.unsqueeze(-1));
  p = at::where(at::isnan(p), at::zeros_like(p), p);
  return {at::einsum("bhqk,bkhd->bqhd", {p, v}), lse};
}

double RelativeError(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() /
         want.abs().max().item<double>();
}

TEST(MergeAttentionStatesTest, TwoKeyHalvesMergeToTheWhole) {
  at::manual_seed(1);
  at::Tensor q = at::randn({2, 5, 3, 4});
  at::Tensor k = at::randn({2, 8, 3, 4});
  at::Tensor v = at::randn({2, 8, 3, 4});
  PartialAttention whole = Reference(q, k, v, at::Tensor());
  PartialAttention merged = MergeAttentionStates(
      Reference(q, k.narrow(1, 0, 3), v.narrow(1, 0, 3), at::Tensor()),
      Reference(q, k.narrow(1, 3, 5), v.narrow(1, 3, 5), at::Tensor()));
  EXPECT_LT(RelativeError(merged.out, whole.out), 1e-5);
  EXPECT_LT(RelativeError(merged.lse, whole.lse), 1e-5);
}

TEST(MergeAttentionStatesTest, FullyMaskedPartsContributeNothing) {
  at::manual_seed(2);
  at::Tensor q = at::randn({1, 4, 2, 4});
  at::Tensor k = at::randn({1, 6, 2, 4});
  at::Tensor v = at::randn({1, 6, 2, 4});
  PartialAttention real = Reference(q, k, v, at::Tensor());
  PartialAttention masked = Reference(q, k, v, at::ones({1, 6}, at::kBool));
  EXPECT_TRUE(at::isneginf(masked.lse).all().item<bool>());
  PartialAttention merged = MergeAttentionStates(masked, real);
  EXPECT_LT(RelativeError(merged.out, real.out), 1e-6);
  PartialAttention nothing = MergeAttentionStates(masked, masked);
  EXPECT_TRUE(nothing.out.eq(0).all().item<bool>());
  EXPECT_FALSE(at::isnan(nothing.out).any().item<bool>());
}

class RingAttentionTest : public ::testing::TestWithParam<int> {};

// Any ring size, including a sequence length (10) that 3 and 4 do not
// divide: shards are padded, padded keys masked, padded queries dropped.
TEST_P(RingAttentionTest, EqualsAttentionOverTheWholeSequence) {
  const int n = GetParam();
  at::manual_seed(3);
  const int64_t length = 10;
  at::Tensor q = at::randn({2, length, 2, 8});
  at::Tensor k = at::randn({2, length, 2, 8});
  at::Tensor v = at::randn({2, length, 2, 8});
  const PartialAttention want = Reference(q, k, v, at::Tensor());
  const at::Tensor mask = SequencePaddingMask(2, length, n);

  testing::RunFakeRanks(n, [&](int rank, Communicator& ring) {
    auto q_shard = ShardSequence(q, 1, rank, n);
    auto k_shard = ShardSequence(k, 1, rank, n);
    auto v_shard = ShardSequence(v, 1, rank, n);
    auto mask_shard = ShardSequence(mask, 1, rank, n);
    ASSERT_TRUE(q_shard.ok() && k_shard.ok() && v_shard.ok() &&
                mask_shard.ok());
    auto got = RingAttention(ring, *q_shard, *k_shard, *v_shard, *mask_shard,
                             Reference);
    ASSERT_TRUE(got.ok()) << got.status();
    auto out = GatherSequence(ring, got->out, 1, length);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_LT(RelativeError(*out, want.out), 1e-5) << "rank " << rank;
    // Each of the n-1 rotations moves this rank's k, v and mask blocks.
    const int64_t block_bytes = k_shard->nbytes() + v_shard->nbytes() +
                                mask_shard->numel();  // mask travels as uint8
    EXPECT_EQ(ring.stats().send_bytes, (n - 1) * block_bytes);
  });
}

INSTANTIATE_TEST_SUITE_P(RingSizes, RingAttentionTest,
                         ::testing::Values(1, 2, 3, 4));

}  // namespace
}  // namespace dserve::parallel
