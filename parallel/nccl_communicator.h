#ifndef DSERVE_PARALLEL_NCCL_COMMUNICATOR_H_
#define DSERVE_PARALLEL_NCCL_COMMUNICATOR_H_

// Communicator over NCCL (GPU tensors), one ncclComm_t per mesh group. Built
// only with --config=cuda (CUDA runtime + NCCL); the target is tagged manual
// so CPU machines never build it.
//
// Rendezvous: group rank 0 draws the ncclUniqueId and publishes it in the
// replica's c10d Store under PrefixStore(group_name); the others wait for it.
// Group names must be unique per store and identical on every member.
//
// Every op is enqueued on the stream returned by options.current_stream and
// returns without waiting for the GPU ("complete" = enqueued, see
// communicator.h); Barrier alone also synchronizes that stream.
// AllToAllAsync enqueues like AllToAll and returns a PendingOp whose Wait()
// is a no-op on the host (stream order already puts later kernels after the
// exchange); it does not yet overlap exchanges on a side stream. bf16 is
// native. Send is enqueued at once; on the GPU it waits for the matching
// Recv, so cycles must use SendRecv (one NCCL group).
//
// Owns its ncclComm_t (destroyed, or aborted after a failure, with the
// communicator) and a 4-byte device buffer for Barrier. Not thread-safe.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include <torch/csrc/distributed/c10d/Store.hpp>

struct CUstream_st;  // cudaStream_t, without CUDA headers here

namespace dserve::parallel {

struct NcclOptions {
  // CUDA device of this rank (the worker's --device).
  int cuda_device = 0;
  // Bounds the wait for rank 0's unique id in the store.
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  // The stream to enqueue on. With a CUDA LibTorch pass
  //   [] { return c10::cuda::getCurrentCUDAStream().stream(); }
  // so communication is ordered with the model's kernels. Unset means the
  // legacy default stream.
  std::function<CUstream_st*()> current_stream;
};

// Blocks until all `group_size` members have joined (ncclCommInitRank).
// INVALID_ARGUMENT for a null store, an empty name, group_size < 1 or
// group_rank outside [0, group_size); UNAVAILABLE for CUDA/NCCL failures;
// DEADLINE_EXCEEDED if rank 0's unique id does not arrive in time.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(
    const c10::intrusive_ptr<c10d::Store>& store, const std::string& group_name,
    int group_rank, int group_size, const NcclOptions& options);

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_NCCL_COMMUNICATOR_H_
