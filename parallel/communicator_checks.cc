#include "parallel/communicator_checks.h"

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "parallel/communicator.h"
#include <ATen/core/Tensor.h>

namespace dserve::parallel {

absl::Status CheckGroupArgs(const std::string& factory, bool has_store,
                            const std::string& group_name, int group_rank,
                            int group_size) {
  if (!has_store) {
    return absl::InvalidArgumentError(absl::StrCat(factory, ": store is null"));
  }
  if (group_name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(factory,
                     ": group_name is empty; it must be unique per store and "
                     "the same on every member"));
  }
  if (group_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        factory, ": group_size ", group_size, " is invalid; it must be >= 1"));
  }
  if (group_rank < 0 || group_rank >= group_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        factory, ": group_rank ", group_rank,
        " is out of range; allowed range is [0, ", group_size, ")"));
  }
  return absl::OkStatus();
}

namespace {

// Debian's abseil has its own string_view; StrCat does not take std's.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

std::string Shape(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

std::string DType(const at::Tensor& t) {
  return std::string(c10::toString(t.scalar_type()));
}

}  // namespace

absl::Status CheckTensor(const at::Tensor& tensor, std::string_view op,
                         std::string_view arg) {
  if (!tensor.defined()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(op), ": ", Sv(arg), " is an undefined tensor"));
  }
  if (!tensor.is_contiguous()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(op), ": ", Sv(arg), " of shape ", Shape(tensor),
        " is not contiguous; call .contiguous() before communicating"));
  }
  return absl::OkStatus();
}

absl::Status CheckBroadcastArgs(const at::Tensor& tensor, int root, int size) {
  RETURN_IF_ERROR(CheckTensor(tensor, "Broadcast", "tensor"));
  if (root < 0 || root >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("Broadcast: root ", root,
                     " is out of range; allowed range is [0, ", size, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckAllGatherArgs(const at::Tensor& input,
                                const at::Tensor& output, int size) {
  RETURN_IF_ERROR(CheckTensor(input, "AllGather", "input"));
  RETURN_IF_ERROR(CheckTensor(output, "AllGather", "output"));
  if (input.dim() < 1) {
    return absl::InvalidArgumentError(
        "AllGather: input is a 0-dim tensor; it must have a dim 0 to "
        "concatenate along");
  }
  if (output.scalar_type() != input.scalar_type()) {
    return absl::InvalidArgumentError(
        absl::StrCat("AllGather: output dtype ", DType(output),
                     " differs from input dtype ", DType(input)));
  }
  bool shape_ok = output.dim() == input.dim() &&
                  output.size(0) == size * input.size(0);
  for (int64_t d = 1; shape_ok && d < input.dim(); ++d) {
    shape_ok = output.size(d) == input.size(d);
  }
  if (!shape_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AllGather: output shape ", Shape(output), " must be input shape ",
        Shape(input), " with dim 0 multiplied by the group size ", size));
  }
  return absl::OkStatus();
}

absl::Status CheckAllToAllArgs(const at::Tensor& input,
                               const at::Tensor& output, int size) {
  RETURN_IF_ERROR(CheckTensor(input, "AllToAll", "input"));
  RETURN_IF_ERROR(CheckTensor(output, "AllToAll", "output"));
  if (input.dim() < 1 || input.size(0) % size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AllToAll: input shape ", Shape(input),
        " must have a dim 0 that is a multiple of the group size ", size));
  }
  if (output.sizes() != input.sizes() ||
      output.scalar_type() != input.scalar_type()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AllToAll: output ", Shape(output), " ", DType(output),
        " must have the shape and dtype of input ", Shape(input), " ",
        DType(input)));
  }
  return absl::OkStatus();
}

absl::Status CheckPeer(const at::Tensor& tensor, std::string_view op, int peer,
                       int rank, int size) {
  RETURN_IF_ERROR(CheckTensor(tensor, op, "tensor"));
  if (peer < 0 || peer >= size || peer == rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(op), ": peer ", peer, " is invalid for rank ", rank,
        "; allowed peers are [0, ", size, ") except the rank itself"));
  }
  return absl::OkStatus();
}

void CountBroadcast(CommStats& stats, int64_t nbytes, int size, bool is_root) {
  if (is_root) stats.broadcast_bytes += (size - 1) * nbytes;
  ++stats.calls;
}

void CountAllReduce(CommStats& stats, int64_t nbytes, int size) {
  stats.all_reduce_bytes += 2 * (size - 1) * nbytes / size;
  ++stats.calls;
}

void CountAllGather(CommStats& stats, int64_t nbytes, int size) {
  stats.all_gather_bytes += (size - 1) * nbytes;
  ++stats.calls;
}

void CountAllToAll(CommStats& stats, int64_t nbytes, int size) {
  stats.all_to_all_bytes += (size - 1) * nbytes / size;
  ++stats.calls;
}

void CountSend(CommStats& stats, int64_t nbytes) {
  stats.send_bytes += nbytes;
  ++stats.calls;
}

void CountCall(CommStats& stats) { ++stats.calls; }

}  // namespace dserve::parallel
