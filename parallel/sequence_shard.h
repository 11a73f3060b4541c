#ifndef DSERVE_PARALLEL_SEQUENCE_SHARD_H_
#define DSERVE_PARALLEL_SEQUENCE_SHARD_H_

// Splitting a sequence of any length over the sequence-parallel ranks
// (TeleFuser's parallel_shard.py): pad to a multiple of the SP degree with
// zeros, give rank i block i, and mask the padded keys in attention so the
// padding changes nothing. GatherSequence reassembles and trims.
//
// Stateless functions; GatherSequence blocks like the Communicator it
// drives; the others do not communicate.

#include <cstdint>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include <ATen/core/Tensor.h>

namespace dserve::parallel {

// The smallest multiple of `parts` that is >= length (parts >= 1).
int64_t PaddedLength(int64_t length, int64_t parts);

// Zero-pads `x` along `dim` to PaddedLength(x.size(dim), parts) and returns
// block `index` of `parts` along it, contiguous.
absl::StatusOr<at::Tensor> ShardSequence(const at::Tensor& x, int64_t dim,
                                         int index, int parts);

// All-gathers every rank's `shard` along `dim` in group-rank order and
// trims the result to `length` along `dim` (dropping the padding).
absl::StatusOr<at::Tensor> GatherSequence(Communicator& comm,
                                          const at::Tensor& shard, int64_t dim,
                                          int64_t length);

// bool (batch, PaddedLength(length, parts)): true at padded positions
// (index >= length), the key_padding_mask convention of attention.
at::Tensor SequencePaddingMask(int64_t batch, int64_t length, int64_t parts);

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_SEQUENCE_SHARD_H_
