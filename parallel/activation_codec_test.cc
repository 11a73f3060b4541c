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

TEST(ActivationCodecTest, ParsesModes) {
  EXPECT_EQ(*ParseSpCompression("off"), SpCompression::kOff);
  EXPECT_EQ(*ParseSpCompression("int8"), SpCompression::kInt8);
  absl::StatusOr<SpCompression> bad = ParseSpCompression("fp4");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'fp4'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("off, int8"), std::string::npos);
}

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
}

// Over several steps of slowly changing activations through a real
// all-to-all: after the exact warm-up, each rank's received tensor is what
// its peers' reference of what they sent says (error feedback keeps both
// ends identical, bit for bit), the error stays bounded (does not
// accumulate), and the bytes sent are the int8 payload plus the scales.
TEST(ActivationCodecTest, ErrorFeedbackKeepsBothEndsIdentical) {
  constexpr int kRanks = 2, kSteps = 6;
  const int64_t rows = 32, channels = 8;
  testing::RunFakeRanks(kRanks, [&](int rank, Communicator& comm) {
    at::manual_seed(10 + rank);
    SpCompressionState state(SpCompression::kInt8, /*exact_steps=*/1);
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
      if (step == 0) {
        EXPECT_EQ(err, 0.0);
        EXPECT_EQ(sent.all_to_all_bytes,
                  (kRanks - 1) * x.nbytes() / kRanks);
      } else {
        // Half a step of a residual of ~0.05·|base|·… : well under 0.01.
        EXPECT_LT(err, 0.01) << "step " << step;
        EXPECT_EQ(sent.all_to_all_bytes,
                  (kRanks - 1) * (x.numel() + kRanks * channels * 4) / kRanks);
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

// Ring hops through the codec: the receiver's block equals the sender's
// reference bit for bit, and off (null state) gives the exact rotation.
TEST(ActivationCodecTest, RingAttentionCompressedStaysCloseAndOffIsExact) {
  constexpr int kRanks = 2;
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
    SpCompressionState state(SpCompression::kInt8, /*exact_steps=*/1);
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
        EXPECT_LT(err, 5e-3) << "step " << step;
      }
    }
  });
}

}  // namespace
}  // namespace dserve::parallel
