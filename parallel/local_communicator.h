#ifndef DSERVE_PARALLEL_LOCAL_COMMUNICATOR_H_
#define DSERVE_PARALLEL_LOCAL_COMMUNICATOR_H_

// The Communicator of a group with one rank (a mesh dimension of degree 1).
// Collectives reduce to local copies, so code written for any degree (e.g.
// the CFG all-gather) runs unchanged on one process. Send/Recv have no valid
// peer and return INVALID_ARGUMENT. Owns nothing; not thread-safe (one
// thread drives it, as for every Communicator); no call blocks.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "parallel/communicator.h"
#include <ATen/core/Tensor.h>

namespace dserve::parallel {

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend_name() const override { return "local"; }

  absl::Status Broadcast(at::Tensor& tensor, int root) override;
  absl::Status AllReduceSum(at::Tensor& tensor) override;
  absl::Status AllGather(const at::Tensor& input, at::Tensor& output) override;
  absl::Status AllToAll(const at::Tensor& input, at::Tensor& output) override;
  absl::Status Send(const at::Tensor& tensor, int peer) override;
  absl::Status Recv(at::Tensor& tensor, int peer) override;
  absl::Status Barrier() override;
};

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_LOCAL_COMMUNICATOR_H_
