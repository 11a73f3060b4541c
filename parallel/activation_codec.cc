#include "parallel/activation_codec.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include <ATen/ATen.h>

namespace dserve::parallel {

absl::StatusOr<SpCompression> ParseSpCompression(const std::string& name) {
  if (name == "off") return SpCompression::kOff;
  if (name == "int8") return SpCompression::kInt8;
  return absl::InvalidArgumentError(absl::StrCat(
      "sp_compression = '", name, "' is not one of: off, int8"));
}

std::string SpCompressionName(SpCompression mode) {
  return mode == SpCompression::kInt8 ? "int8" : "off";
}

Int8Residual EncodeInt8Residual(const at::Tensor& x, const at::Tensor& ref,
                                int64_t channels) {
  const int64_t chunks = x.size(0);
  at::Tensor r = (x.to(at::kFloat) - ref.to(at::kFloat))
                     .reshape({chunks, -1, channels});
  at::Tensor scale = std::get<0>(r.abs().max(1)) / 127.0f;  // (chunks, C)
  // A channel without change divides by 1 (its residual is 0 anyway).
  at::Tensor safe = at::where(scale > 0, scale, at::ones_like(scale));
  at::Tensor q = at::round(r / safe.unsqueeze(1))
                     .clamp(-127, 127)
                     .to(at::kChar)
                     .reshape(x.sizes())
                     .contiguous();
  return {q, scale.contiguous()};
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
  Int8Residual out = EncodeInt8Residual(send, slot.sent, channels);
  Int8Residual in{at::empty_like(out.q), at::empty_like(out.scale)};
  RETURN_IF_ERROR(comm.AllToAll(out.q, in.q));
  RETURN_IF_ERROR(comm.AllToAll(out.scale, in.scale));
  slot.sent = DecodeInt8Residual(out, slot.sent, channels);
  slot.received = DecodeInt8Residual(in, slot.received, channels);
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
  const at::Tensor x = send.unsqueeze(0);
  Int8Residual out = EncodeInt8Residual(x, slot.sent.unsqueeze(0), channels);
  Int8Residual in{at::empty_like(out.q), at::empty_like(out.scale)};
  RETURN_IF_ERROR(comm.SendRecv(out.q, dst, in.q, src));
  RETURN_IF_ERROR(comm.SendRecv(out.scale, dst, in.scale, src));
  slot.sent =
      DecodeInt8Residual(out, slot.sent.unsqueeze(0), channels).squeeze(0);
  slot.received =
      DecodeInt8Residual(in, slot.received.unsqueeze(0), channels).squeeze(0);
  return slot.received;
}

}  // namespace dserve::parallel
