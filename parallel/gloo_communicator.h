#ifndef DSERVE_PARALLEL_GLOO_COMMUNICATOR_H_
#define DSERVE_PARALLEL_GLOO_COMMUNICATOR_H_

// Communicator over LibTorch c10d's ProcessGroupGloo (CPU tensors, TCP on
// 127.0.0.1): the CPU backend of dserve and the one every parallel algorithm
// is tested with in several processes.
//
// Many groups share one c10d Store (the replica's TCPStore hosted by rank 0):
// each group rendezvouses under its own c10d::PrefixStore(group_name, store),
// so group names must be unique per store and identical on every member.
//
// The returned Communicator owns its ProcessGroupGloo (its sockets and worker
// threads), a copy of every Send still in flight and one thread that waits for
// those sends; it keeps a reference to the store. Not thread-safe; every call
// blocks until complete, except Send, which is buffered (see communicator.h):
// a Gloo send only completes once the peer posts the matching Recv. A failed
// send is reported by the next call. AllToAllAsync queues c10d's
// alltoall_base on the process group's worker threads (three, so the q, k
// and v exchanges of Ulysses move concurrently) and its PendingOp waits on
// the c10d work. Destruction waits for sends in flight
// (each bounded by the timeout). Gloo limitations it hides:
//  * bf16 AllReduceSum runs in fp32 and is rounded back to bf16;
//  * bf16 and bool tensors are moved as same-width integer/half bit patterns
//    by Broadcast, AllGather and AllToAll (no arithmetic, so bits are exact).
// Only single-host groups are supported (the device binds to 127.0.0.1).

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace dserve::parallel {

// Builds this rank's member of group `group_name`. Blocks until all
// `group_size` members have called it (rendezvous through `store`), or fails
// with DEADLINE_EXCEEDED/UNAVAILABLE after `timeout`, which also bounds every
// later collective. INVALID_ARGUMENT for a null store, an empty name,
// group_size < 1, group_rank outside [0, group_size) or timeout <= 0.
absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(
    const c10::intrusive_ptr<c10d::Store>& store, const std::string& group_name,
    int group_rank, int group_size, std::chrono::milliseconds timeout);

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_GLOO_COMMUNICATOR_H_
