#ifndef DSERVE_PARALLEL_HOST_STAGING_COMMUNICATOR_H_
#define DSERVE_PARALLEL_HOST_STAGING_COMMUNICATOR_H_

// A Communicator that lets ranks whose tensors live on a GPU use a host-only
// backend (Gloo): every op copies its non-CPU tensors to the host, runs the
// wrapped communicator on the copies and copies results back into the
// caller's tensors on their own device. CPU tensors pass straight through
// (no copy), so on CPU ranks it behaves exactly like the wrapped one.
//
// This is what `--comm=gloo` gives CUDA ranks: several ranks can share one
// GPU (NCCL refuses two ranks of a group on one device), which the parallel
// equivalence runs on a single GPU use. The copies synchronise the host with
// the GPU at every op, so it is a test and fallback path; CUDA ranks use
// NCCL by default.
//
// Owns the wrapped communicator; its stats() count what the wrapped one moves
// between ranks (not the staging copies). Not
// thread-safe, like every Communicator; calls block as the wrapped ones do.

#include <memory>

#include "parallel/communicator.h"

namespace dserve::parallel {

std::unique_ptr<Communicator> WrapWithHostStaging(
    std::unique_ptr<Communicator> inner);

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_HOST_STAGING_COMMUNICATOR_H_
