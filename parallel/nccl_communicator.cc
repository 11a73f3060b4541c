#include "parallel/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "parallel/communicator.h"
#include "parallel/communicator_checks.h"
#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace dserve::parallel {
namespace {

constexpr char kUniqueIdKey[] = "nccl_unique_id";

std::optional<ncclDataType_t> NcclType(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return ncclFloat32;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kDouble:
      return ncclFloat64;
    case at::kInt:
      return ncclInt32;
    case at::kLong:
      return ncclInt64;
    case at::kChar:
      return ncclInt8;
    case at::kByte:
    case at::kBool:
      return ncclUint8;
    default:
      return std::nullopt;
  }
}

absl::Status CheckCuda(const at::Tensor& t, const char* op) {
  if (!t.is_cuda()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nccl ", op, ": tensor is on ", t.device().str(),
        "; NCCL moves CUDA tensors only (use the Gloo communicator on CPU)"));
  }
  if (!NcclType(t.scalar_type()).has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("nccl ", op, ": dtype ", c10::toString(t.scalar_type()),
                     " is not supported; use float, half, bfloat16, double, "
                     "int8/uint8/bool, int32 or int64"));
  }
  return absl::OkStatus();
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, std::string group_name, int rank, int size,
                   NcclOptions options, void* barrier_buffer)
      : comm_(comm),
        group_name_(std::move(group_name)),
        rank_(rank),
        size_(size),
        options_(std::move(options)),
        barrier_buffer_(barrier_buffer) {}

  ~NcclCommunicator() override {
    // A communicator with a failed op may have peers stuck in a collective;
    // abort rather than destroy so this process does not hang with them.
    if (failed_) {
      ncclCommAbort(comm_);
    } else {
      ncclCommDestroy(comm_);
    }
    cudaFree(barrier_buffer_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend_name() const override { return "nccl"; }

  absl::Status Broadcast(at::Tensor& tensor, int root) override {
    RETURN_IF_ERROR(CheckBroadcastArgs(tensor, root, size_));
    RETURN_IF_ERROR(CheckCuda(tensor, "Broadcast"));
    absl::Status s = Check("Broadcast",
                           ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(),
                                         tensor.numel(), Type(tensor), root,
                                         comm_, Stream()));
    if (s.ok()) CountBroadcast(stats_, tensor.nbytes(), size_, rank_ == root);
    return s;
  }

  absl::Status AllReduceSum(at::Tensor& tensor) override {
    RETURN_IF_ERROR(CheckTensor(tensor, "AllReduceSum", "tensor"));
    RETURN_IF_ERROR(CheckCuda(tensor, "AllReduceSum"));
    absl::Status s = Check(
        "AllReduceSum",
        ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(),
                      Type(tensor), ncclSum, comm_, Stream()));
    if (s.ok()) CountAllReduce(stats_, tensor.nbytes(), size_);
    return s;
  }

  absl::Status AllGather(const at::Tensor& input, at::Tensor& output) override {
    RETURN_IF_ERROR(CheckAllGatherArgs(input, output, size_));
    RETURN_IF_ERROR(CheckCuda(input, "AllGather"));
    RETURN_IF_ERROR(CheckCuda(output, "AllGather"));
    // Contiguous dim-0 concatenation is exactly NCCL's rank-ordered layout.
    absl::Status s = Check(
        "AllGather", ncclAllGather(input.data_ptr(), output.data_ptr(),
                                   input.numel(), Type(input), comm_, Stream()));
    if (s.ok()) CountAllGather(stats_, input.nbytes(), size_);
    return s;
  }

  absl::Status AllToAll(const at::Tensor& input, at::Tensor& output) override {
    RETURN_IF_ERROR(CheckAllToAllArgs(input, output, size_));
    RETURN_IF_ERROR(CheckCuda(input, "AllToAll"));
    RETURN_IF_ERROR(CheckCuda(output, "AllToAll"));
    const size_t count = input.numel() / size_;
    const size_t chunk_bytes = count * input.element_size();
    const char* in = static_cast<const char*>(input.data_ptr());
    char* out = static_cast<char*>(output.data_ptr());
    const ncclDataType_t type = Type(input);
    cudaStream_t stream = Stream();
    absl::Status s = Check("AllToAll", ncclGroupStart());
    for (int peer = 0; s.ok() && peer < size_; ++peer) {
      s = Check("AllToAll", ncclSend(in + peer * chunk_bytes, count, type, peer,
                                     comm_, stream));
      if (s.ok()) {
        s = Check("AllToAll", ncclRecv(out + peer * chunk_bytes, count, type,
                                       peer, comm_, stream));
      }
    }
    // The group must be closed even after a failed enqueue.
    absl::Status end = Check("AllToAll", ncclGroupEnd());
    if (s.ok()) s = end;
    if (s.ok()) CountAllToAll(stats_, input.nbytes(), size_);
    return s;
  }

  // The grouped send/recv of AllToAll is enqueued on the current stream,
  // which is already asynchronous for the host: the host returns at once
  // and every later kernel on that stream runs after the exchange. So the
  // PendingOp has nothing to wait for on the host and Wait() is a no-op.
  // Exchanges started back to back (q, k, v) are serialised on the one
  // stream; overlapping them with each other or with compute would need a
  // separate communication stream and events, which this backend does not
  // use yet.
  absl::StatusOr<std::unique_ptr<PendingOp>> AllToAllAsync(
      const at::Tensor& input, at::Tensor& output) override {
    RETURN_IF_ERROR(AllToAll(input, output));
    return std::unique_ptr<PendingOp>(std::make_unique<CompletedOp>());
  }

  absl::Status Send(const at::Tensor& tensor, int peer) override {
    RETURN_IF_ERROR(CheckPeer(tensor, "Send", peer, rank_, size_));
    RETURN_IF_ERROR(CheckCuda(tensor, "Send"));
    absl::Status s = Check("Send", ncclSend(tensor.data_ptr(), tensor.numel(),
                                            Type(tensor), peer, comm_, Stream()));
    if (s.ok()) CountSend(stats_, tensor.nbytes());
    return s;
  }

  absl::Status Recv(at::Tensor& tensor, int peer) override {
    RETURN_IF_ERROR(CheckPeer(tensor, "Recv", peer, rank_, size_));
    RETURN_IF_ERROR(CheckCuda(tensor, "Recv"));
    absl::Status s = Check("Recv", ncclRecv(tensor.data_ptr(), tensor.numel(),
                                            Type(tensor), peer, comm_, Stream()));
    if (s.ok()) CountCall(stats_);
    return s;
  }

  absl::Status SendRecv(const at::Tensor& send, int dst, at::Tensor& recv,
                        int src) override {
    RETURN_IF_ERROR(CheckPeer(send, "SendRecv", dst, rank_, size_));
    RETURN_IF_ERROR(CheckPeer(recv, "SendRecv", src, rank_, size_));
    RETURN_IF_ERROR(CheckCuda(send, "SendRecv"));
    RETURN_IF_ERROR(CheckCuda(recv, "SendRecv"));
    cudaStream_t stream = Stream();
    absl::Status s = Check("SendRecv", ncclGroupStart());
    if (s.ok()) {
      s = Check("SendRecv", ncclSend(send.data_ptr(), send.numel(), Type(send),
                                     dst, comm_, stream));
    }
    if (s.ok()) {
      s = Check("SendRecv", ncclRecv(recv.data_ptr(), recv.numel(), Type(recv),
                                     src, comm_, stream));
    }
    absl::Status end = Check("SendRecv", ncclGroupEnd());
    if (s.ok()) s = end;
    if (s.ok()) {
      CountSend(stats_, send.nbytes());
      CountCall(stats_);
    }
    return s;
  }

  absl::Status Barrier() override {
    cudaStream_t stream = Stream();
    absl::Status s =
        Check("Barrier", ncclAllReduce(barrier_buffer_, barrier_buffer_, 1,
                                       ncclFloat32, ncclSum, comm_, stream));
    if (!s.ok()) return s;
    // "Every rank has entered" is a host-side promise: wait for the GPU.
    if (cudaError_t e = cudaStreamSynchronize(stream); e != cudaSuccess) {
      failed_ = true;
      return absl::UnavailableError(
          absl::StrCat("nccl Barrier on group \"", group_name_,
                       "\": cudaStreamSynchronize: ", cudaGetErrorString(e)));
    }
    CountCall(stats_);
    return absl::OkStatus();
  }

 private:
  cudaStream_t Stream() const {
    return options_.current_stream ? options_.current_stream() : nullptr;
  }

  static ncclDataType_t Type(const at::Tensor& t) {
    return *NcclType(t.scalar_type());
  }

  absl::Status Check(const char* op, ncclResult_t result) {
    if (result == ncclSuccess) return absl::OkStatus();
    failed_ = true;
    const char* detail = ncclGetLastError(comm_);
    return absl::UnavailableError(absl::StrCat(
        "nccl ", op, " on group \"", group_name_, "\" (rank ", rank_, " of ",
        size_, ") failed: ", ncclGetErrorString(result),
        detail != nullptr && *detail != '\0' ? absl::StrCat(" (", detail, ")")
                                             : std::string()));
  }

  ncclComm_t comm_;
  std::string group_name_;
  int rank_;
  int size_;
  NcclOptions options_;
  void* barrier_buffer_;
  bool failed_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(
    const c10::intrusive_ptr<c10d::Store>& store, const std::string& group_name,
    int group_rank, int group_size, const NcclOptions& options) {
  RETURN_IF_ERROR(CheckGroupArgs("CreateNcclCommunicator", store.defined(),
                                 group_name, group_rank, group_size));
  if (cudaError_t e = cudaSetDevice(options.cuda_device); e != cudaSuccess) {
    return absl::UnavailableError(
        absl::StrCat("CreateNcclCommunicator: cudaSetDevice(",
                     options.cuda_device, "): ", cudaGetErrorString(e)));
  }

  ncclUniqueId id;
  try {
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(group_name, store);
    if (group_rank == 0) {
      if (ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess) {
        return absl::UnavailableError(absl::StrCat(
            "ncclGetUniqueId for group \"", group_name,
            "\": ", ncclGetErrorString(r)));
      }
      const auto* bytes = reinterpret_cast<const uint8_t*>(&id);
      prefixed->set(kUniqueIdKey,
                    std::vector<uint8_t>(bytes, bytes + sizeof(id)));
    } else {
      prefixed->wait({kUniqueIdKey}, options.timeout);
      std::vector<uint8_t> bytes = prefixed->get(kUniqueIdKey);
      if (bytes.size() != sizeof(id)) {
        return absl::DataLossError(absl::StrCat(
            "nccl unique id of group \"", group_name, "\" has ", bytes.size(),
            " bytes; expected ", sizeof(id)));
      }
      std::memcpy(&id, bytes.data(), sizeof(id));
    }
  } catch (const std::exception& e) {
    return absl::DeadlineExceededError(
        absl::StrCat("nccl rendezvous of group \"", group_name, "\" (rank ",
                     group_rank, " of ", group_size, "): ", e.what()));
  }

  ncclComm_t comm = nullptr;
  if (ncclResult_t r = ncclCommInitRank(&comm, group_size, id, group_rank);
      r != ncclSuccess) {
    return absl::UnavailableError(
        absl::StrCat("ncclCommInitRank of group \"", group_name, "\" (rank ",
                     group_rank, " of ", group_size,
                     "): ", ncclGetErrorString(r)));
  }
  void* barrier_buffer = nullptr;
  if (cudaError_t e = cudaMalloc(&barrier_buffer, sizeof(float));
      e != cudaSuccess) {
    ncclCommDestroy(comm);
    return absl::UnavailableError(absl::StrCat(
        "CreateNcclCommunicator: cudaMalloc: ", cudaGetErrorString(e)));
  }
  return std::unique_ptr<Communicator>(std::make_unique<NcclCommunicator>(
      comm, group_name, group_rank, group_size, options, barrier_buffer));
}

}  // namespace dserve::parallel
