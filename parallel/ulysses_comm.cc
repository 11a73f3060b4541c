#include "parallel/ulysses_comm.h"

#include <memory>
#include <utility>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "parallel/communicator.h"
#include <ATen/ATen.h>

namespace dserve::parallel {
namespace {

std::string Shape(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

absl::Status CheckScatterInput(const at::Tensor& x, int64_t u,
                               const char* fn) {
  if (x.dim() != 4 || x.size(2) % u != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        fn, ": x has shape ", Shape(x),
        "; expected (B, S_local, H, D) with H divisible by the ulysses "
        "degree ",
        u));
  }
  return absl::OkStatus();
}

// Chunk j (dim 0) of the send buffer is head block j: it goes to rank j.
at::Tensor ScatterSendBuffer(const at::Tensor& x, int64_t u) {
  const int64_t b = x.size(0), s = x.size(1), h = x.size(2), d = x.size(3);
  return x.reshape({b, s, u, h / u, d}).permute({2, 0, 1, 3, 4}).contiguous();
}

// Chunk j of recv is rank j's sequence shard of our heads; shards in rank
// order are the sequence in order.
at::Tensor ScatterResult(const at::Tensor& recv) {
  const int64_t u = recv.size(0), b = recv.size(1), s = recv.size(2),
                h = recv.size(3), d = recv.size(4);
  return recv.permute({1, 0, 2, 3, 4}).reshape({b, u * s, h, d});
}

}  // namespace

absl::StatusOr<std::vector<at::Tensor>> UlyssesScatterHeadsAsync(
    Communicator& comm, const std::vector<at::Tensor>& xs,
    SpCompressionState* compression) {
  const int64_t u = comm.size();
  for (const at::Tensor& x : xs) {
    RETURN_IF_ERROR(CheckScatterInput(x, u, "UlyssesScatterHeadsAsync"));
  }
  if (compression != nullptr) {
    std::vector<at::Tensor> out;
    for (const at::Tensor& x : xs) {
      ASSIGN_OR_RETURN(at::Tensor y, UlyssesScatterHeads(comm, x, compression));
      out.push_back(std::move(y));
    }
    return out;
  }
  std::vector<at::Tensor> recvs;
  std::vector<std::unique_ptr<PendingOp>> ops;
  absl::Status status;
  for (const at::Tensor& x : xs) {
    // The layout of the next buffer is computed while the previous
    // exchanges are in flight.
    at::Tensor send = ScatterSendBuffer(x, u);
    at::Tensor recv = at::empty_like(send);
    absl::StatusOr<std::unique_ptr<PendingOp>> op =
        comm.AllToAllAsync(send, recv);
    if (!op.ok()) {
      status = op.status();
      break;
    }
    ops.push_back(*std::move(op));
    recvs.push_back(recv);
  }
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < ops.size(); ++i) {
    absl::Status st = ops[i]->Wait();
    if (!st.ok() && status.ok()) status = st;
    if (status.ok()) out.push_back(ScatterResult(recvs[i]));
  }
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<at::Tensor> UlyssesScatterHeads(
    Communicator& comm, const at::Tensor& x,
    SpCompressionState* compression) {
  const int64_t u = comm.size();
  RETURN_IF_ERROR(CheckScatterInput(x, u, "UlyssesScatterHeads"));
  at::Tensor send = ScatterSendBuffer(x, u);
  if (compression != nullptr) {
    // Channels: the (H/u)·D features of a token in one head block.
    ASSIGN_OR_RETURN(at::Tensor recv,
                     CompressedAllToAll(comm, send, send.size(3) * send.size(4),
                                        *compression));
    return ScatterResult(recv);
  }
  at::Tensor recv = at::empty_like(send);
  RETURN_IF_ERROR(comm.AllToAll(send, recv));
  return ScatterResult(recv);
}

absl::StatusOr<at::Tensor> UlyssesGatherHeads(
    Communicator& comm, const at::Tensor& y,
    SpCompressionState* compression) {
  const int64_t u = comm.size();
  if (y.dim() != 4 || y.size(1) % u != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UlyssesGatherHeads: y has shape ", Shape(y),
        "; expected (B, S, H_local, D) with S divisible by the ulysses "
        "degree ",
        u, " (pad the sequence first)"));
  }
  const int64_t b = y.size(0), s = y.size(1), h = y.size(2), d = y.size(3);
  // Chunk j of the send buffer is sequence shard j: it goes back to rank j.
  at::Tensor send =
      y.reshape({b, u, s / u, h, d}).permute({1, 0, 2, 3, 4}).contiguous();
  at::Tensor recv;
  if (compression != nullptr) {
    ASSIGN_OR_RETURN(recv, CompressedAllToAll(comm, send, h * d, *compression));
  } else {
    recv = at::empty_like(send);
    RETURN_IF_ERROR(comm.AllToAll(send, recv));
  }
  // Chunk j of recv is head block j of our sequence shard.
  return recv.permute({1, 2, 0, 3, 4}).reshape({b, s / u, u * h, d});
}

}  // namespace dserve::parallel
