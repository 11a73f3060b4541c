#ifndef DSERVE_PARALLEL_COMMUNICATOR_H_
#define DSERVE_PARALLEL_COMMUNICATOR_H_

// Collective and point-to-point communication among the ranks of one mesh
// group. Mirrors PyTorch c10d's Backend split: one small interface, with Gloo
// (CPU, LibTorch c10d), NCCL (GPU, --config=cuda) and fake implementations.
//
// Contract shared by every implementation:
//  * A Communicator covers exactly one group (e.g. the ulysses group of this
//    rank); ranks are numbered 0..size()-1 inside the group. Nothing here is a
//    global process group: the mesh builds one Communicator per group and
//    passes it explicitly.
//  * Every call blocks until the local part of the operation is complete
//    (output tensors are valid on return); on GPU "complete" means enqueued on
//    the current CUDA stream. The one exception is AllToAllAsync, which
//    returns a PendingOp to Wait on.
//  * Tensors must be contiguous. Collectives must be called by every rank of
//    the group in the same order with matching shapes and dtypes.
//  * A Communicator is not thread-safe: one thread drives it.
//  * Errors (c10::Error, ncclResult_t) are converted to absl::Status where
//    they arise; a failed collective leaves the group unusable (the replica is
//    torn down and restarted, as NCCL communicators cannot be repaired).

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status_macros.h"
#include <ATen/core/Tensor.h>

namespace dserve::parallel {

// Bytes this rank put on the wire (sent), per operation kind, since creation
// or the last ResetStats(). Tests and benchmarks compare these with analytic
// formulas, so each implementation counts the same way:
//  * Broadcast: root counts (size-1)*nbytes, others 0.
//  * AllReduce: 2*(size-1)/size*nbytes (ring algorithm).
//  * AllGather: (size-1)*nbytes(input).
//  * AllToAll: (size-1)/size*nbytes(input).
//  * Send: nbytes; Recv: 0 (SendRecv: both). Barrier: 0.
struct CommStats {
  int64_t broadcast_bytes = 0;
  int64_t all_reduce_bytes = 0;
  int64_t all_gather_bytes = 0;
  int64_t all_to_all_bytes = 0;
  int64_t send_bytes = 0;
  int64_t calls = 0;

  int64_t total_bytes() const {
    return broadcast_bytes + all_reduce_bytes + all_gather_bytes +
           all_to_all_bytes + send_bytes;
  }
};

// An operation started by a Communicator's *Async call and not yet known to
// be complete. Owns a reference to the op's tensors (so they outlive the
// transfer) and, for Gloo, the c10d work handle. Not thread-safe: the
// thread that drives the Communicator calls Wait. It must not outlive its
// Communicator.
class PendingOp {
 public:
  virtual ~PendingOp() = default;
  // Blocks until this rank's part of the op is complete (the output is
  // valid) and returns its outcome; on GPU "complete" means ordered before
  // later work on the current CUDA stream, as for the blocking calls. Call
  // at most once; destroying an op that was never waited for waits for it
  // (and drops its error: the group is unusable anyway, see above).
  virtual absl::Status Wait() = 0;
};

// The op of a backend whose *Async call already did all the work before
// returning (the default below, the local and fake communicators).
class CompletedOp : public PendingOp {
 public:
  absl::Status Wait() override { return absl::OkStatus(); }
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  // This rank's index in the group, 0..size()-1.
  virtual int rank() const = 0;
  // Number of ranks in the group.
  virtual int size() const = 0;
  // "gloo", "nccl" or "fake"; for logs and GetServerInfo.
  virtual std::string backend_name() const = 0;

  // Copies `tensor` from group rank `root` into `tensor` on every rank.
  virtual absl::Status Broadcast(at::Tensor& tensor, int root) = 0;
  // Element-wise sum over the group, in place.
  virtual absl::Status AllReduceSum(at::Tensor& tensor) = 0;
  // Concatenates every rank's `input` along dim 0 into `output`
  // (output.size(0) == size() * input.size(0), rank order).
  virtual absl::Status AllGather(const at::Tensor& input,
                                 at::Tensor& output) = 0;
  // Splits `input` into size() equal chunks along dim 0, sends chunk j to
  // rank j, and writes the chunk received from rank j at chunk j of `output`
  // (same shape as input).
  virtual absl::Status AllToAll(const at::Tensor& input,
                                at::Tensor& output) = 0;
  // AllToAll started without waiting for it: returns once the exchange is
  // in flight, so the caller can start more exchanges (Ulysses starts q, k
  // and v together) or compute before PendingOp::Wait. Until Wait returns,
  // `input` must not be modified and `output` not read; both stay alive
  // (the op holds references). Other calls on this Communicator may be made
  // meanwhile, in the same order on every rank. Bytes are counted as for
  // AllToAll, when the op is started. The default runs the blocking
  // AllToAll and returns a CompletedOp, so backends without a native async
  // path (local, fake) behave exactly as before.
  virtual absl::StatusOr<std::unique_ptr<PendingOp>> AllToAllAsync(
      const at::Tensor& input, at::Tensor& output) {
    RETURN_IF_ERROR(AllToAll(input, output));
    return std::unique_ptr<PendingOp>(std::make_unique<CompletedOp>());
  }
  // Point to point; `peer` is a group rank. Send/Recv pairs must match in
  // shape and dtype; the n-th Send to a peer is received by that peer's n-th
  // Recv from this rank. Send returns once `tensor` may be reused, before
  // the peer has received it (Gloo and the fake buffer it). On NCCL the
  // stream still waits for the matching Recv, so where every rank of a cycle
  // sends before it receives (ring attention), use SendRecv instead.
  virtual absl::Status Send(const at::Tensor& tensor, int peer) = 0;
  virtual absl::Status Recv(at::Tensor& tensor, int peer) = 0;
  // One step of a rotation: sends `send` to `dst` and receives `recv` from
  // `src` as a single exchange (MPI_Sendrecv; one NCCL group), which is
  // deadlock-free when every rank of a cycle calls it at once. Counts as one
  // Send and one Recv. The default relies on Send being buffered; backends
  // may override it to run both halves concurrently.
  virtual absl::Status SendRecv(const at::Tensor& send, int dst,
                                at::Tensor& recv, int src) {
    RETURN_IF_ERROR(Send(send, dst));
    return Recv(recv, src);
  }
  // Returns once every rank of the group has entered Barrier.
  virtual absl::Status Barrier() = 0;

  const CommStats& stats() const { return stats_; }
  void ResetStats() { stats_ = CommStats(); }

 protected:
  CommStats stats_;
};

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_COMMUNICATOR_H_
