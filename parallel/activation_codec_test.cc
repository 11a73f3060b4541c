#include "parallel/activation_codec.h"

#include <vector>

#include "gtest/gtest.h"
#include "parallel/communicator.h"
#include "parallel/ring_attention.h"
#include "parallel/testing/fake_communicator.h"
#include "parallel/ulysses_comm.h"
#include <ATen/ATen.h>

namespace dserve::parallel {
namespace {

// Round trip: every element within half a quantisation step of its chunk
// and channel, and exact where the residual is 0.
TEST(ActivationCodecTest, RoundTripWithinHalfAStepPerChannel) {
  at::manual_seed(3);
  const int64_t chunks = 2, rows = 40, channels = 6;
  at::Tensor ref = at::randn({chunks, rows, channels});
  at::Tensor x = ref + 0.1 * at::randn({chunks, rows, channels}) *
                           at::arange(1, channels + 1, at::kFloat);
  x.select(2, 0).copy_(ref.select(2, 0));  // channel 0 unchanged
  Int8Residual r = EncodeInt8Residual(x, ref, channels);
  EXPECT_EQ(r.q.scalar_type(), at::kChar);
  EXPECT_EQ(r.q.sizes(), x.sizes());
  EXPECT_EQ(r.scale.sizes(), (std::vector<int64_t>{chunks, channels}));
  at::Tensor back = DecodeInt8Residual(r, ref, channels);
  at::Tensor err = (back - x).abs();
  at::Tensor bound = r.scale.unsqueeze(1) * 0.5 + 1e-6;
  EXPECT_TRUE((err <= bound).all().item<bool>())
      << "max error " << err.max().item<float>();
  EXPECT_TRUE(back.select(2, 0).equal(x.select(2, 0)));
  // The scale is per channel: a wider channel gets a coarser step.
  EXPECT_GT(r.scale[0][5].item<float>(), r.scale[0][1].item<float>());
}

// Nibble layout: element 2i in the low nibble, 2i + 1 in the high one, each
// as q + 8; an odd count per chunk ends in a padding nibble of q = 0.
TEST(ActivationCodecTest, PackInt4LayoutAndOddCounts) {
  at::Tensor q = at::tensor({-8, 7, 0, -1, 3, 1, -7, 2, 5, -3},
                            at::TensorOptions().dtype(at::kChar))
                     .reshape({2, 5});
  at::Tensor packed = PackInt4(q);
  EXPECT_EQ(packed.scalar_type(), at::kByte);
  ASSERT_EQ(packed.sizes(), (std::vector<int64_t>{2, 3}));
  // Chunk 0: (-8, 7) -> 0 | 15 << 4; (0, -1) -> 8 | 7 << 4; (3, pad) ->
  // 11 | 8 << 4.
  EXPECT_EQ(packed[0][0].item<int>(), 0 + 15 * 16);
  EXPECT_EQ(packed[0][1].item<int>(), 8 + 7 * 16);
  EXPECT_EQ(packed[0][2].item<int>(), 11 + 8 * 16);
  // Chunk 1 starts its own bytes: (1, -7) -> 9 | 1 << 4.
  EXPECT_EQ(packed[1][0].item<int>(), 9 + 1 * 16);
  EXPECT_TRUE(UnpackInt4(packed, q.sizes()).equal(q));
}

// Every value in [-8, 7], at odd and even counts per chunk and odd channel
// counts, survives packing bit for bit, in half the bytes (rounded up).
TEST(ActivationCodecTest, PackInt4RoundTripsEveryValue) {
  at::manual_seed(4);
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{1, 1}, {2, 7, 3}, {3, 4, 5}, {2, 16}}) {
    at::Tensor q = at::randint(-8, 8, shape, at::TensorOptions().dtype(at::kChar));
    at::Tensor packed = PackInt4(q);
    const int64_t per_chunk = q.numel() / shape[0];
    EXPECT_EQ(packed.numel(), shape[0] * ((per_chunk + 1) / 2));
    EXPECT_TRUE(UnpackInt4(packed, q.sizes()).equal(q)) << q.sizes();
  }
}

// int4: every element within half a quantisation step (scale / 2 =
// max|residual| / 14 per chunk and channel), negative residuals included,
// with an odd channel count and an odd count per chunk.
TEST(ActivationCodecTest, Int4RoundTripWithinHalfAStep) {
  at::manual_seed(6);
  const int64_t chunks = 2, rows = 9, channels = 5;
  at::Tensor ref = at::randn({chunks, rows, channels});
  at::Tensor x = ref - 0.3 * at::rand({chunks, rows, channels}) *
                           at::arange(1, channels + 1, at::kFloat);
  Int4Residual r = EncodeInt4Residual(x, ref, channels);
  EXPECT_EQ(r.packed.sizes(),
            (std::vector<int64_t>{chunks, (rows * channels + 1) / 2}));
  EXPECT_EQ(r.scale.sizes(), (std::vector<int64_t>{chunks, channels}));
  at::Tensor q = UnpackInt4(r.packed, x.sizes());
  EXPECT_LE(q.abs().max().item<int>(), 7);
  EXPECT_LT(q.min().item<int>(), 0);  // the residuals are negative
  at::Tensor back = DecodeInt4Residual(r, ref, channels);
  EXPECT_EQ(back.sizes(), x.sizes());
  at::Tensor err = (back - x).abs();
  at::Tensor bound = r.scale.unsqueeze(1) * 0.5 + 1e-6;
  EXPECT_TRUE((err <= bound).all().item<bool>())
      << "max error " << err.max().item<float>();
  // The scale is max|residual| / 7, per channel.
  at::Tensor want = std::get<0>((x - ref).abs().max(1)) / 7.0f;
  EXPECT_TRUE(r.scale.allclose(want));
}

// A residual of 0 (scale 0) decodes to the reference exactly, for both
// widths, and packs to bytes of two zero nibbles (q + 8 = 8).
TEST(ActivationCodecTest, ZeroResidualHasScaleZeroAndDecodesExactly) {
  at::manual_seed(8);
  at::Tensor ref = at::randn({2, 3, 3});
  Int4Residual r4 = EncodeInt4Residual(ref, ref, 3);
  EXPECT_TRUE(r4.scale.eq(0).all().item<bool>());
  EXPECT_TRUE(r4.packed.eq(8 + 8 * 16).all().item<bool>());
  EXPECT_TRUE(DecodeInt4Residual(r4, ref, 3).equal(ref));
  Int8Residual r8 = EncodeInt8Residual(ref, ref, 3);
  EXPECT_TRUE(r8.scale.eq(0).all().item<bool>());
  EXPECT_TRUE(DecodeInt8Residual(r8, ref, 3).equal(ref));
}

TEST(ActivationCodecTest, StateCountsStepsAndSlots) {
  SpCompressionState s(SpCompression::kInt8, /*exact_steps=*/2);
  s.BeginStep();
  EXPECT_EQ(s.step(), 0);
  EXPECT_TRUE(s.exact_step());
  SpCompressionState::Slot* first = &s.NextSlot();
  s.NextSlot();
  s.BeginStep();
  EXPECT_TRUE(s.exact_step());
  EXPECT_EQ(&s.NextSlot(), first);  // same exchange, same slot
  s.BeginStep();
  EXPECT_FALSE(s.exact_step());
  s.Reset();
  s.BeginStep();
  EXPECT_EQ(s.step(), 0);
  EXPECT_TRUE(s.exact_step());
  SpCompressionState off(SpCompression::kOff, 1);
  for (int i = 0; i < 3; ++i) off.BeginStep();
  EXPECT_TRUE(off.exact_step());
  // The warm-up is a parameter: the default, and never below 1 (step 0 has
  // no reference).
  SpCompressionState plain(SpCompression::kInt4);
  EXPECT_EQ(plain.exact_steps(), kDefaultSpExactSteps);
  SpCompressionState zero(SpCompression::kInt4, 0);
  EXPECT_EQ(zero.exact_steps(), 1);
  zero.BeginStep();
  EXPECT_TRUE(zero.exact_step());
  zero.BeginStep();
  EXPECT_FALSE(zero.exact_step());
}

class CompressedModeTest : public ::testing::TestWithParam<SpCompression> {
};

// Bytes one rank sends in a compressed all-to-all of `x` ((ranks, ...),
// `channels` per row): every peer's chunk of the payload plus its scales.
int64_t CompressedAllToAllBytes(SpCompression mode, const at::Tensor& x,
                                int64_t channels) {
  const int64_t ranks = x.size(0), per_chunk = x.numel() / ranks;
  const int64_t payload =
      mode == SpCompression::kInt4 ? (per_chunk + 1) / 2 : per_chunk;
  return (ranks - 1) * (payload + channels * 4);
}

// Over several steps of slowly changing activations through a real
// all-to-all: after the exact warm-up, each rank's received tensor is what
// its peers' reference of what they sent says (error feedback keeps both
// ends identical, bit for bit), the error stays bounded (does not
// accumulate), and the bytes sent are the payload (int8, or int4 packed
// two per byte) plus the scales.
TEST_P(CompressedModeTest, ErrorFeedbackKeepsBothEndsIdentical) {
  constexpr int kRanks = 2, kSteps = 6;
  const int64_t rows = 32, channels = 8;
  const SpCompression mode = GetParam();
  testing::RunFakeRanks(kRanks, [&](int rank, Communicator& comm) {
    at::manual_seed(10 + rank);
    SpCompressionState state(mode, /*exact_steps=*/1);
    at::Tensor base = at::randn({kRanks, rows, channels});
    for (int step = 0; step < kSteps; ++step) {
      state.BeginStep();
      at::Tensor x = base + 0.05 * step * at::sin(base * (step + 1));
      comm.ResetStats();
      absl::StatusOr<at::Tensor> got =
          CompressedAllToAll(comm, x, channels, state);
      ASSERT_TRUE(got.ok()) << got.status();
      // The exact exchange of the same step, for comparison.
      at::Tensor want = at::empty_like(x);
      const CommStats sent = comm.stats();
      ASSERT_TRUE(comm.AllToAll(x, want).ok());
      const double err = (*got - want).abs().max().item<double>();
      // The chunk this rank sends itself is not on the wire: always exact.
      EXPECT_TRUE(got->select(0, rank).equal(x.select(0, rank)))
          << "step " << step;
      if (step == 0) {
        EXPECT_EQ(err, 0.0);
        EXPECT_EQ(sent.all_to_all_bytes,
                  (kRanks - 1) * x.nbytes() / kRanks);
      } else {
        // Half a step of a residual of ~0.05·|base|·… : well under 0.01
        // for int8 (1/254 of it), under 0.2 for int4 (1/14 of it).
        EXPECT_LT(err, mode == SpCompression::kInt4 ? 0.2 : 0.01)
            << "step " << step;
        EXPECT_EQ(sent.all_to_all_bytes,
                  CompressedAllToAllBytes(mode, x, channels));
      }
      // Exchange the sender's references: each must equal what the peer
      // reconstructed.
      SpCompressionState::Slot& slot = state.slots_for_test(0);
      at::Tensor peers_view = at::empty_like(slot.sent);
      ASSERT_TRUE(comm.AllToAll(slot.sent, peers_view).ok());
      EXPECT_TRUE(peers_view.equal(slot.received)) << "step " << step;
    }
  });
}

// Ring hops through the codec (both widths): the receiver's block equals the sender's
// reference bit for bit, and off (null state) gives the exact rotation.
TEST_P(CompressedModeTest, RingAttentionCompressedStaysCloseAndOffIsExact) {
  constexpr int kRanks = 2;
  const SpCompression mode = GetParam();
  at::manual_seed(5);
  const at::Tensor q = at::randn({1, 8, 2, 4}), k = at::randn({1, 8, 2, 4}),
                   v = at::randn({1, 8, 2, 4});
  BlockAttentionFn attn = [](const at::Tensor& qq, const at::Tensor& kk,
                             const at::Tensor& vv, const at::Tensor&) {
    at::Tensor s = at::einsum("bqhd,bkhd->bhqk", {qq, kk});
    at::Tensor lse = at::logsumexp(s, -1);
    at::Tensor p = at::exp(s - lse.unsqueeze(-1));
    return PartialAttention{at::einsum("bhqk,bkhd->bqhd", {p, vv}), lse};
  };
  testing::RunFakeRanks(kRanks, [&](int rank, Communicator& comm) {
    auto block = [&](const at::Tensor& t, double drift) {
      return (t + drift * at::cos(t)).narrow(1, rank * 4, 4).contiguous();
    };
    SpCompressionState state(mode, /*exact_steps=*/1);
    for (int step = 0; step < 4; ++step) {
      state.BeginStep();
      const double drift = 0.02 * step;
      auto exact = RingAttention(comm, block(q, drift), block(k, drift),
                                 block(v, drift), at::Tensor(), attn);
      auto packed = RingAttention(comm, block(q, drift), block(k, drift),
                                  block(v, drift), at::Tensor(), attn, &state);
      ASSERT_TRUE(exact.ok() && packed.ok());
      const double err = (packed->out - exact->out).abs().max().item<double>();
      if (step == 0) {
        EXPECT_EQ(err, 0.0);
      } else {
        EXPECT_LT(err, mode == SpCompression::kInt4 ? 0.1 : 5e-3)
            << "step " << step;
      }
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Modes, CompressedModeTest,
                         ::testing::Values(SpCompression::kInt8,
                                           SpCompression::kInt4),
                         [](const auto& info) {
                           return SpCompressionName(info.param);
                         });

}  // namespace
}  // namespace dserve::parallel
