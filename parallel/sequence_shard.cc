#include "parallel/sequence_shard.h"

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

}  // namespace

int64_t PaddedLength(int64_t length, int64_t parts) {
  return (length + parts - 1) / parts * parts;
}

absl::StatusOr<at::Tensor> ShardSequence(const at::Tensor& x, int64_t dim,
                                         int index, int parts) {
  if (parts < 1 || index < 0 || index >= parts) {
    return absl::InvalidArgumentError(
        absl::StrCat("ShardSequence: index ", index, " of parts ", parts,
                     " is invalid; parts must be >= 1 and index in [0, parts)"));
  }
  if (dim < 0 || dim >= x.dim()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ShardSequence: dim ", dim, " is out of range for shape ",
                     Shape(x)));
  }
  const int64_t length = x.size(dim);
  const int64_t padded = PaddedLength(length, parts);
  at::Tensor full = x;
  if (padded != length) {
    std::vector<int64_t> pad_shape = x.sizes().vec();
    pad_shape[dim] = padded - length;
    full = at::cat({x, at::zeros(pad_shape, x.options())}, dim);
  }
  const int64_t block = padded / parts;
  return full.narrow(dim, index * block, block).contiguous();
}

absl::StatusOr<at::Tensor> GatherSequence(Communicator& comm,
                                          const at::Tensor& shard, int64_t dim,
                                          int64_t length) {
  if (dim < 0 || dim >= shard.dim()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GatherSequence: dim ", dim, " is out of range for shape ",
        Shape(shard)));
  }
  const int64_t gathered_length = comm.size() * shard.size(dim);
  if (length < 0 || length > gathered_length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GatherSequence: length ", length, " is out of range; allowed range is "
        "[0, ", gathered_length, "] (", comm.size(), " shards of ",
        shard.size(dim), ")"));
  }
  // AllGather concatenates along dim 0: move the sequence dim there.
  at::Tensor input = shard.movedim(dim, 0).contiguous();
  std::vector<int64_t> out_shape = input.sizes().vec();
  out_shape[0] *= comm.size();
  at::Tensor output = at::empty(out_shape, input.options());
  RETURN_IF_ERROR(comm.AllGather(input, output));
  return output.narrow(0, 0, length).movedim(0, dim).contiguous();
}

at::Tensor SequencePaddingMask(int64_t batch, int64_t length, int64_t parts) {
  const int64_t padded = PaddedLength(length, parts);
  return at::arange(padded, at::kLong).ge(length).unsqueeze(0).expand(
      {batch, padded}).contiguous();
}

}  // namespace dserve::parallel
