#ifndef DSERVE_PARALLEL_ULYSSES_COMM_H_
#define DSERVE_PARALLEL_ULYSSES_COMM_H_

// The two all-to-alls of Ulysses sequence parallelism (DeepSpeed-Ulysses;
// TeleFuser's ulysses_comm.py), over the ulysses group of the mesh:
//
//   ScatterHeads: (B, S/u, H, D) -> (B, S, H/u, D)   before attention
//   GatherHeads:  (B, S, H/u, D) -> (B, S/u, H, D)   after attention
//
// Group rank i holds sequence shard i (rows [i*S/u, (i+1)*S/u)) before the
// scatter and head block i (heads [i*H/u, (i+1)*H/u)) after it. Each call
// moves (u-1)/u of its input over the wire (one AllToAll).
//
// UlyssesScatterHeadsAsync is the asynchronous variant (TeleFuser's
// async_usp_forward): it starts the exchanges of several tensors (q, k, v)
// with Communicator::AllToAllAsync before waiting for any, so they move
// together and the send-buffer layout of k and v is computed while q is in
// flight. Same bytes, same result as three UlyssesScatterHeads calls.
//
// Stateless functions; they block like the Communicator they drive and
// share its (lack of) thread-safety. With a non-null `compression` (issue
// 15, --sp_compression=int8) each exchange goes through the state's next
// slot (parallel/activation_codec.h: an int8 residual against the previous
// step after the exact warm-up); null is the exact exchange of today, bit
// for bit. The async variant with a state runs its exchanges one after
// another (the residual of each needs its own reference).

#include <vector>

#include "absl/status/statusor.h"
#include "parallel/activation_codec.h"
#include "parallel/communicator.h"
#include <ATen/core/Tensor.h>

namespace dserve::parallel {

// x: (B, S_local, H, D) with H divisible by comm.size(). Returns
// (B, comm.size() * S_local, H / comm.size(), D), contiguous.
absl::StatusOr<at::Tensor> UlyssesScatterHeads(
    Communicator& comm, const at::Tensor& x,
    SpCompressionState* compression = nullptr);

// Each of `xs` as for UlyssesScatterHeads (shapes may differ). Starts every
// exchange, then waits for all of them (all are waited for even after a
// failure, so no exchange is left writing into a dropped buffer); returns
// the results in order, or the first error.
absl::StatusOr<std::vector<at::Tensor>> UlyssesScatterHeadsAsync(
    Communicator& comm, const std::vector<at::Tensor>& xs,
    SpCompressionState* compression = nullptr);

// y: (B, S, H_local, D) with S divisible by comm.size(). Returns
// (B, S / comm.size(), comm.size() * H_local, D), contiguous.
absl::StatusOr<at::Tensor> UlyssesGatherHeads(
    Communicator& comm, const at::Tensor& y,
    SpCompressionState* compression = nullptr);

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_ULYSSES_COMM_H_
