#ifndef DSERVE_WORKER_MODELS_PARALLEL_CONTEXT_H_
#define DSERVE_WORKER_MODELS_PARALLEL_CONTEXT_H_

// What a rank needs to run its share of a generation: the replica's mesh
// (degrees, and through the communicators this rank's coordinates) and one
// communicator per mesh dimension. Passed explicitly to ParallelDiT; there is
// no global process group. A 1-process run has no ParallelContext at all
// (Pipeline::Step without a predictor).
//
// Ownership: holds the mesh by value and BORROWS the MeshCommunicators, which
// must outlive every object built from this context. Not thread-safe, like
// the communicators it points to.

#include "parallel/device_mesh.h"
#include "parallel/mesh_communicators.h"

namespace dserve::models {

struct ParallelContext {
  // The replica's own mesh (dp = 1; DP is the scheduler's replicas).
  parallel::DeviceMesh mesh;
  // This rank's groups; never null.
  parallel::MeshCommunicators* comms = nullptr;

  int degree(parallel::MeshDim dim) const { return mesh.degree(dim); }
  parallel::Communicator& group(parallel::MeshDim dim) const {
    return comms->group(dim);
  }
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_PARALLEL_CONTEXT_H_
