#ifndef DSERVE_WORKER_MESH_BACKEND_H_
#define DSERVE_WORKER_MESH_BACKEND_H_

// Which communicator backend a rank's mesh groups use (--comm) and the
// factory that builds them. The world group that carries plans and the
// leader's control words stays on Gloo with CPU tensors (worker/rendezvous);
// this is the data plane: the cfg/ring/ulysses/sp/pp/tp groups that move
// activations.
//
//   --comm=auto  NCCL for CUDA ranks in builds with NCCL (--config=cuda /
//                -DDSERVE_WITH_CUDA=ON), Gloo otherwise
//   --comm=nccl  NCCL; FAILED_PRECONDITION in a build without it
//   --comm=gloo  Gloo; CUDA tensors are staged through the host
//                (parallel/host_staging_communicator.h), so several ranks of
//                a group may share one GPU
// Every group rendezvouses through the replica's TCPStore (NCCL publishes
// its unique id there). Free functions; nothing blocks until the factory is
// called (it blocks until the group has formed).

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "parallel/mesh_communicators.h"
#include <c10/core/Device.h>

namespace dserve::worker {

// True in builds that link the NCCL communicator.
bool BuiltWithNccl();

// "nccl" or "gloo" for `comm` ("auto", "nccl", "gloo") on a rank whose
// device is CUDA (`cuda`) in a build that has NCCL (`have_nccl`). Pure.
// INVALID_ARGUMENT for nccl on a CPU rank or an unknown name;
// FAILED_PRECONDITION for nccl without NCCL in the build.
absl::StatusOr<std::string> ResolveCommBackend(const std::string& comm,
                                               bool cuda, bool have_nccl);

// The factory of the resolved backend for a rank on `device`; `timeout`
// bounds every rendezvous and collective.
absl::StatusOr<parallel::CommunicatorFactory> MeshCommunicatorFactory(
    const std::string& backend, const at::Device& device,
    std::chrono::milliseconds timeout);

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_MESH_BACKEND_H_
