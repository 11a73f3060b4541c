#ifndef DSERVE_PARALLEL_COMMUNICATOR_CHECKS_H_
#define DSERVE_PARALLEL_COMMUNICATOR_CHECKS_H_

// Argument checks and byte accounting shared by every Communicator
// implementation, so that Gloo, NCCL and the fake reject the same calls with
// the same messages and count the same bytes (see CommStats in
// communicator.h). Stateless functions; thread-safe; nothing blocks.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "parallel/communicator.h"
#include <ATen/core/Tensor.h>

namespace dserve::parallel {

// Arguments of a communicator factory (`factory` names it in the message):
// a store, a non-empty group name, group_size >= 1 and group_rank in
// [0, group_size).
absl::Status CheckGroupArgs(const std::string& factory, bool has_store,
                            const std::string& group_name, int group_rank,
                            int group_size);

// `tensor` must be defined and contiguous. `op` and `arg` name the call and
// argument in the message, e.g. ("AllGather", "output").
absl::Status CheckTensor(const at::Tensor& tensor, std::string_view op,
                         std::string_view arg);

// Broadcast: root in [0, size).
absl::Status CheckBroadcastArgs(const at::Tensor& tensor, int root, int size);

// AllGather: output has the dtype of input and shape
// [size * input.size(0), input.sizes()[1:]...]; input has at least 1 dim.
absl::Status CheckAllGatherArgs(const at::Tensor& input,
                                const at::Tensor& output, int size);

// AllToAll: output has the shape and dtype of input, and input.size(0) is a
// multiple of size.
absl::Status CheckAllToAllArgs(const at::Tensor& input,
                               const at::Tensor& output, int size);

// Send/Recv: peer in [0, size) and not this rank.
absl::Status CheckPeer(const at::Tensor& tensor, std::string_view op, int peer,
                       int rank, int size);

// Adds the bytes of one successful call to `stats` (and counts the call),
// following the formulas in communicator.h. `nbytes` is the size of the
// caller's tensor (for AllGather/AllToAll: the input) in its own dtype.
void CountBroadcast(CommStats& stats, int64_t nbytes, int size, bool is_root);
void CountAllReduce(CommStats& stats, int64_t nbytes, int size);
void CountAllGather(CommStats& stats, int64_t nbytes, int size);
void CountAllToAll(CommStats& stats, int64_t nbytes, int size);
void CountSend(CommStats& stats, int64_t nbytes);
// Recv and Barrier move no bytes of this rank's; they only count as calls.
void CountCall(CommStats& stats);

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_COMMUNICATOR_CHECKS_H_
