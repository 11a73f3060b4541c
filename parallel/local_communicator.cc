#include "parallel/local_communicator.h"

#include "absl/status/status.h"
#include "common/status_macros.h"
#include "parallel/communicator_checks.h"
#include <ATen/core/Tensor.h>

namespace dserve::parallel {

absl::Status LocalCommunicator::Broadcast(at::Tensor& tensor, int root) {
  RETURN_IF_ERROR(CheckBroadcastArgs(tensor, root, 1));
  CountBroadcast(stats_, tensor.nbytes(), 1, /*is_root=*/true);
  return absl::OkStatus();
}

absl::Status LocalCommunicator::AllReduceSum(at::Tensor& tensor) {
  RETURN_IF_ERROR(CheckTensor(tensor, "AllReduceSum", "tensor"));
  CountAllReduce(stats_, tensor.nbytes(), 1);
  return absl::OkStatus();
}

absl::Status LocalCommunicator::AllGather(const at::Tensor& input,
                                          at::Tensor& output) {
  RETURN_IF_ERROR(CheckAllGatherArgs(input, output, 1));
  if (!output.is_same(input)) output.copy_(input);
  CountAllGather(stats_, input.nbytes(), 1);
  return absl::OkStatus();
}

absl::Status LocalCommunicator::AllToAll(const at::Tensor& input,
                                         at::Tensor& output) {
  RETURN_IF_ERROR(CheckAllToAllArgs(input, output, 1));
  if (!output.is_same(input)) output.copy_(input);
  CountAllToAll(stats_, input.nbytes(), 1);
  return absl::OkStatus();
}

absl::Status LocalCommunicator::Send(const at::Tensor& tensor, int peer) {
  return CheckPeer(tensor, "Send", peer, 0, 1);
}

absl::Status LocalCommunicator::Recv(at::Tensor& tensor, int peer) {
  return CheckPeer(tensor, "Recv", peer, 0, 1);
}

absl::Status LocalCommunicator::Barrier() {
  CountCall(stats_);
  return absl::OkStatus();
}

}  // namespace dserve::parallel
