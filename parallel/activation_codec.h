#ifndef DSERVE_PARALLEL_ACTIVATION_CODEC_H_
#define DSERVE_PARALLEL_ACTIVATION_CODEC_H_

// Compressed sequence-parallel traffic (issue 15 item 2; CompactFusion's
// idea): adjacent denoising steps exchange nearly the same activations, so
// after a few exact steps each exchanged tensor is sent as a low-bit
// residual (int8, or int4 packed two per byte) against the value the
// receiver reconstructed at the previous step, with a per-channel fp32
// scale. Error feedback: the sender keeps exactly what the receiver
// reconstructed (same quantised values, same scales, same arithmetic), so
// the next residual carries this step's quantisation error and errors do
// not accumulate.
//
// Layout: an exchanged buffer is viewed as (chunks, rows, channels); chunk j
// goes to one peer (the all-to-all's dim-0 chunks; one chunk for a ring
// SendRecv); the scale is max|residual| / qmax (127 for int8, 7 for int4)
// over the rows of a chunk, per channel, so a chunk is decodable on its own.
//
// SpCompressionState owns the references of one plan: one Slot per
// exchange, in call order within a step (the model calls its collectives in
// the same order every step). Both ends of every exchange hold a Slot for
// it and update it identically. Not thread-safe; one per ParallelDiT.

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include "parallel/sp_compression.h"
#include <ATen/core/Tensor.h>

namespace dserve::parallel {

struct Int8Residual {
  at::Tensor q;      // int8, the input's shape
  at::Tensor scale;  // fp32 (chunks, channels)
};

// x and ref of the same shape, (chunks, ...) with numel divisible by
// chunks * channels. Residual x - ref quantised to int8 (round to nearest,
// |q| <= 127) with scale max|x - ref| / 127 per chunk and channel (the last
// `channels` elements of each row cycle through the channels).
Int8Residual EncodeInt8Residual(const at::Tensor& x, const at::Tensor& ref,
                                int64_t channels);
// ref + q * scale, in ref's dtype (computed in fp32). Deterministic: the
// sender and the receiver call it on the same q, scale and ref.
at::Tensor DecodeInt8Residual(const Int8Residual& r, const at::Tensor& ref,
                              int64_t channels);

struct Int4Residual {
  at::Tensor packed;  // uint8 (chunks, ceil(numel per chunk / 2)), PackInt4
  at::Tensor scale;   // fp32 (chunks, channels)
};

// As EncodeInt8Residual with |q| <= 7 and scale max|x - ref| / 7, packed
// two values per byte (half the int8 payload; twice the rounding error).
Int4Residual EncodeInt4Residual(const at::Tensor& x, const at::Tensor& ref,
                                int64_t channels);
// ref + q * scale, in ref's dtype (computed in fp32); deterministic.
at::Tensor DecodeInt4Residual(const Int4Residual& r, const at::Tensor& ref,
                              int64_t channels);

// q: int8 (chunks, ...) with values in [-8, 7]. Each chunk's values in
// row-major order, two per byte: element 2i in the low nibble, 2i + 1 in
// the high one, each stored as q + 8. A chunk with an odd count ends in a
// padding nibble (q = 0). Returns uint8 (chunks, ceil(numel per chunk / 2)),
// on q's device.
at::Tensor PackInt4(const at::Tensor& q);
// The inverse: int8 of `shape` (shape[0] = packed.size(0) chunks).
at::Tensor UnpackInt4(const at::Tensor& packed, at::IntArrayRef shape);

class SpCompressionState {
 public:
  // References of one exchange: what this rank sent (as the peer
  // reconstructed it) and what it reconstructed from what it received.
  struct Slot {
    at::Tensor sent;
    at::Tensor received;
  };

  // `exact_steps`: the first steps of a plan are sent uncompressed (at
  // least 1, the first step having no reference; smaller values count as 1).
  explicit SpCompressionState(SpCompression mode,
                              int exact_steps = kDefaultSpExactSteps);

  SpCompression mode() const { return mode_; }
  int exact_steps() const { return exact_steps_; }
  // A new plan: drops every reference; the next step is step 0.
  void Reset();
  // The next denoising step of the current plan (call before its first
  // exchange; the first call after Reset starts step 0).
  void BeginStep();
  int step() const { return step_; }
  // True when this step's exchanges are sent exactly (off, or warm-up).
  bool exact_step() const {
    return mode_ == SpCompression::kOff || step_ < exact_steps_;
  }
  // The slot of the next exchange of this step.
  Slot& NextSlot();
  // Slot `i` of the current plan (tests compare both ends' references).
  Slot& slots_for_test(size_t i) { return slots_.at(i); }

 private:
  SpCompression mode_;
  int exact_steps_;
  int step_ = -1;
  size_t next_slot_ = 0;
  std::deque<Slot> slots_;  // deque: a Slot& stays valid as slots are added
};

// Whether exchange `slot` of a step may be compressed: a compressed step
// and a reference of `shape` on this end (every rank of a group exchanges
// the same shapes, so every end decides alike; a changed shape is sent
// exactly and becomes the new reference).
bool CanCompress(const SpCompressionState& state, const at::Tensor& reference,
                 at::IntArrayRef shape);

// Communicator::AllToAll of `send` (dim-0 chunks, `channels` per row) that
// goes through `state`'s next slot: exact in an exact step or on a new
// shape, else the state's mode's residual (int8 values or packed int4
// bytes) and its scales (two AllToAlls; CommStats counts the bytes really
// sent). The chunk a rank sends itself is received exact (it never goes
// on the wire). Returns the received buffer (send's shape
// and dtype). Every rank of the group must pass states in the same step.
absl::StatusOr<at::Tensor> CompressedAllToAll(Communicator& comm,
                                              const at::Tensor& send,
                                              int64_t channels,
                                              SpCompressionState& state);

// Communicator::SendRecv of `send` to `dst` and of a tensor of the same
// shape and dtype from `src`, through `state`'s next slot as above (one
// chunk: the scale is per channel over the whole block).
absl::StatusOr<at::Tensor> CompressedSendRecv(Communicator& comm,
                                              const at::Tensor& send, int dst,
                                              int src, int64_t channels,
                                              SpCompressionState& state);

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_ACTIVATION_CODEC_H_
