#include "parallel/host_staging_communicator.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <ATen/ATen.h>

namespace dserve::parallel {
namespace {

bool OnHost(const at::Tensor& t) { return !t.defined() || t.is_cpu(); }

// The host copy an op works on: `t` itself when already on the host.
at::Tensor ToHost(const at::Tensor& t) {
  return OnHost(t) ? t : t.to(at::kCPU);
}

// Writes `host` back into `t` when `t` lives elsewhere.
void FromHost(at::Tensor& t, const at::Tensor& host) {
  if (!OnHost(t)) t.copy_(host);
}

// Copies an async exchange's host output back when it completes.
class StagedOp : public PendingOp {
 public:
  StagedOp(std::unique_ptr<PendingOp> inner, at::Tensor host_input,
           at::Tensor host_output, at::Tensor output)
      : inner_(std::move(inner)),
        host_input_(std::move(host_input)),
        host_output_(std::move(host_output)),
        output_(std::move(output)) {}

  absl::Status Wait() override {
    absl::Status s = inner_->Wait();
    if (s.ok()) FromHost(output_, host_output_);
    return s;
  }

 private:
  std::unique_ptr<PendingOp> inner_;
  at::Tensor host_input_;  // kept alive until the exchange is done
  at::Tensor host_output_;
  at::Tensor output_;
};

class HostStagingCommunicator : public Communicator {
 public:
  explicit HostStagingCommunicator(std::unique_ptr<Communicator> inner)
      : inner_(std::move(inner)) {}

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string backend_name() const override {
    return inner_->backend_name() + "+host_staging";
  }

  absl::Status Broadcast(at::Tensor& tensor, int root) override {
    at::Tensor host = ToHost(tensor);
    absl::Status s = inner_->Broadcast(host, root);
    if (s.ok()) FromHost(tensor, host);
    return Done(s);
  }

  absl::Status AllReduceSum(at::Tensor& tensor) override {
    at::Tensor host = ToHost(tensor);
    absl::Status s = inner_->AllReduceSum(host);
    if (s.ok()) FromHost(tensor, host);
    return Done(s);
  }

  absl::Status AllGather(const at::Tensor& input, at::Tensor& output) override {
    at::Tensor host_out = ToHost(output);
    absl::Status s = inner_->AllGather(ToHost(input), host_out);
    if (s.ok()) FromHost(output, host_out);
    return Done(s);
  }

  absl::Status AllToAll(const at::Tensor& input, at::Tensor& output) override {
    at::Tensor host_out = ToHost(output);
    absl::Status s = inner_->AllToAll(ToHost(input), host_out);
    if (s.ok()) FromHost(output, host_out);
    return Done(s);
  }

  absl::StatusOr<std::unique_ptr<PendingOp>> AllToAllAsync(
      const at::Tensor& input, at::Tensor& output) override {
    at::Tensor host_in = ToHost(input);
    at::Tensor host_out = ToHost(output);
    absl::StatusOr<std::unique_ptr<PendingOp>> op =
        inner_->AllToAllAsync(host_in, host_out);
    TakeStats();
    if (!op.ok()) return op.status();
    return std::unique_ptr<PendingOp>(std::make_unique<StagedOp>(
        *std::move(op), std::move(host_in), std::move(host_out), output));
  }

  absl::Status Send(const at::Tensor& tensor, int peer) override {
    return Done(inner_->Send(ToHost(tensor), peer));
  }

  absl::Status Recv(at::Tensor& tensor, int peer) override {
    at::Tensor host = ToHost(tensor);
    absl::Status s = inner_->Recv(host, peer);
    if (s.ok()) FromHost(tensor, host);
    return Done(s);
  }

  absl::Status SendRecv(const at::Tensor& send, int dst, at::Tensor& recv,
                        int src) override {
    at::Tensor host_recv = ToHost(recv);
    absl::Status s = inner_->SendRecv(ToHost(send), dst, host_recv, src);
    if (s.ok()) FromHost(recv, host_recv);
    return Done(s);
  }

  absl::Status Barrier() override { return Done(inner_->Barrier()); }

 private:
  absl::Status Done(absl::Status s) {
    TakeStats();
    return s;
  }

  // Moves what the wrapped communicator counted into this one's stats, so
  // ResetStats on the wrapper works as on any communicator.
  void TakeStats() {
    const CommStats& in = inner_->stats();
    stats_.broadcast_bytes += in.broadcast_bytes;
    stats_.all_reduce_bytes += in.all_reduce_bytes;
    stats_.all_gather_bytes += in.all_gather_bytes;
    stats_.all_to_all_bytes += in.all_to_all_bytes;
    stats_.send_bytes += in.send_bytes;
    stats_.calls += in.calls;
    inner_->ResetStats();
  }

  std::unique_ptr<Communicator> inner_;
};

}  // namespace

std::unique_ptr<Communicator> WrapWithHostStaging(
    std::unique_ptr<Communicator> inner) {
  return std::make_unique<HostStagingCommunicator>(std::move(inner));
}

}  // namespace dserve::parallel
