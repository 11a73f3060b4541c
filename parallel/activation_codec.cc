#include "parallel/activation_codec.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "common/status_macros.h"
#include <ATen/ATen.h>
#include <c10/util/accumulate.h>

namespace dserve::parallel {

namespace {

// The residual x - ref quantised to int8 values in [-qmax, qmax] (round to
// nearest) with scale max|x - ref| / qmax per chunk and channel: q of x's
// shape, scale (chunks, channels).
Int8Residual QuantizeResidual(const at::Tensor& x, const at::Tensor& ref,
                              int64_t channels, float qmax) {
  const int64_t chunks = x.size(0);
  at::Tensor r = (x.to(at::kFloat) - ref.to(at::kFloat))
                     .reshape({chunks, -1, channels});
  at::Tensor scale = std::get<0>(r.abs().max(1)) / qmax;  // (chunks, C)
  // A channel without change divides by 1 (its residual is 0 anyway).
  at::Tensor safe = at::where(scale > 0, scale, at::ones_like(scale));
  at::Tensor q = at::round(r / safe.unsqueeze(1))
                     .clamp(-qmax, qmax)
                     .to(at::kChar)
                     .reshape(x.sizes())
                     .contiguous();
  return {q, scale.contiguous()};
}

// What goes on the wire for one exchange: the mode's payload (int8 values
// or packed int4 bytes) and the scales.
struct Residual {
  at::Tensor payload;
  at::Tensor scale;
};

Residual Encode(SpCompression mode, const at::Tensor& x, const at::Tensor& ref,
                int64_t channels) {
  if (mode == SpCompression::kInt4) {
    Int4Residual r = EncodeInt4Residual(x, ref, channels);
    return {std::move(r.packed), std::move(r.scale)};
  }
  Int8Residual r = EncodeInt8Residual(x, ref, channels);
  return {std::move(r.q), std::move(r.scale)};
}

at::Tensor Decode(SpCompression mode, const Residual& r, const at::Tensor& ref,
                  int64_t channels) {
  if (mode == SpCompression::kInt4) {
    return DecodeInt4Residual({r.payload, r.scale}, ref, channels);
  }
  return DecodeInt8Residual({r.payload, r.scale}, ref, channels);
}

}  // namespace

Int8Residual EncodeInt8Residual(const at::Tensor& x, const at::Tensor& ref,
                                int64_t channels) {
  return QuantizeResidual(x, ref, channels, 127.0f);
}

at::Tensor DecodeInt8Residual(const Int8Residual& r, const at::Tensor& ref,
                              int64_t channels) {
  const int64_t chunks = ref.size(0);
  at::Tensor delta = r.q.to(at::kFloat).reshape({chunks, -1, channels}) *
                     r.scale.unsqueeze(1);
  return (ref.to(at::kFloat) + delta.reshape(ref.sizes()))
      .to(ref.scalar_type())
      .contiguous();
}

at::Tensor PackInt4(const at::Tensor& q) {
  const int64_t chunks = q.size(0);
  // Offset binary: q + 8 in [0, 15] (int16: no uint8 overflow on the way).
  at::Tensor u = q.reshape({chunks, -1}).to(at::kShort) + 8;
  if (u.size(1) % 2 == 1) u = at::constant_pad_nd(u, {0, 1}, 8);
  u = u.reshape({chunks, -1, 2});
  return (u.select(2, 0) + u.select(2, 1) * 16).to(at::kByte).contiguous();
}

at::Tensor UnpackInt4(const at::Tensor& packed, at::IntArrayRef shape) {
  const int64_t chunks = packed.size(0);
  const int64_t per_chunk =
      c10::multiply_integers(shape.begin(), shape.end()) / chunks;
  at::Tensor lo = at::bitwise_and(packed, 15);
  at::Tensor hi = at::bitwise_right_shift(packed, 4);
  return (at::stack({lo, hi}, 2).reshape({chunks, -1}).narrow(1, 0, per_chunk)
              .to(at::kChar) -
          8)
      .reshape(shape)
      .contiguous();
}

Int4Residual EncodeInt4Residual(const at::Tensor& x, const at::Tensor& ref,
                                int64_t channels) {
  Int8Residual r = QuantizeResidual(x, ref, channels, 7.0f);
  return {PackInt4(r.q), std::move(r.scale)};
}

at::Tensor DecodeInt4Residual(const Int4Residual& r, const at::Tensor& ref,
                              int64_t channels) {
  return DecodeInt8Residual({UnpackInt4(r.packed, ref.sizes()), r.scale}, ref,
                            channels);
}

SpCompressionState::SpCompressionState(SpCompression mode, int exact_steps)
    : mode_(mode), exact_steps_(std::max(1, exact_steps)) {}

void SpCompressionState::Reset() {
  slots_.clear();
  step_ = -1;
  next_slot_ = 0;
}

void SpCompressionState::BeginStep() {
  ++step_;
  next_slot_ = 0;
}

SpCompressionState::Slot& SpCompressionState::NextSlot() {
  if (next_slot_ == slots_.size()) slots_.emplace_back();
  return slots_[next_slot_++];
}

bool CanCompress(const SpCompressionState& state, const at::Tensor& reference,
                 at::IntArrayRef shape) {
  return !state.exact_step() && reference.defined() &&
         reference.sizes() == shape;
}

absl::StatusOr<at::Tensor> CompressedAllToAll(Communicator& comm,
                                              const at::Tensor& send,
                                              int64_t channels,
                                              SpCompressionState& state) {
  SpCompressionState::Slot& slot = state.NextSlot();
  at::Tensor recv = at::empty_like(send);
  if (!CanCompress(state, slot.sent, send.sizes())) {
    RETURN_IF_ERROR(comm.AllToAll(send, recv));
    slot.sent = send.clone();
    slot.received = recv;
    return recv;
  }
  const SpCompression mode = state.mode();
  Residual out = Encode(mode, send, slot.sent, channels);
  Residual in{at::empty_like(out.payload), at::empty_like(out.scale)};
  RETURN_IF_ERROR(comm.AllToAll(out.payload, in.payload));
  RETURN_IF_ERROR(comm.AllToAll(out.scale, in.scale));
  slot.sent = Decode(mode, out, slot.sent, channels);
  slot.received = Decode(mode, in, slot.received, channels);
  // This rank's own chunk never goes on the wire: it stays exact at both
  // of its ends (both are this rank).
  const int64_t self = comm.rank();
  slot.sent.select(0, self).copy_(send.select(0, self));
  slot.received.select(0, self).copy_(send.select(0, self));
  return slot.received;
}

absl::StatusOr<at::Tensor> CompressedSendRecv(Communicator& comm,
                                              const at::Tensor& send, int dst,
                                              int src, int64_t channels,
                                              SpCompressionState& state) {
  SpCompressionState::Slot& slot = state.NextSlot();
  if (!CanCompress(state, slot.sent, send.sizes())) {
    at::Tensor recv = at::empty_like(send);
    RETURN_IF_ERROR(comm.SendRecv(send, dst, recv, src));
    slot.sent = send.clone();
    slot.received = recv;
    return recv;
  }
  // One chunk: a leading dim of 1 for the codec's (chunks, rows, C) view.
  const SpCompression mode = state.mode();
  const at::Tensor x = send.unsqueeze(0);
  Residual out = Encode(mode, x, slot.sent.unsqueeze(0), channels);
  Residual in{at::empty_like(out.payload), at::empty_like(out.scale)};
  RETURN_IF_ERROR(comm.SendRecv(out.payload, dst, in.payload, src));
  RETURN_IF_ERROR(comm.SendRecv(out.scale, dst, in.scale, src));
  slot.sent = Decode(mode, out, slot.sent.unsqueeze(0), channels).squeeze(0);
  slot.received =
      Decode(mode, in, slot.received.unsqueeze(0), channels).squeeze(0);
  return slot.received;
}

}  // namespace dserve::parallel
