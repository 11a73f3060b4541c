#ifndef DSERVE_WORKER_TESTING_FAULT_INJECTING_COMMUNICATOR_H_
#define DSERVE_WORKER_TESTING_FAULT_INJECTING_COMMUNICATOR_H_

// Wraps a real Communicator for worker tests: forwards every call, counts
// broadcasts, and, when told, fails every call from the N-th on with
// UNAVAILABLE, which is what a dead peer looks like to the caller.
//
// Borrows the wrapped Communicator (it must outlive this). Not thread-safe,
// like every Communicator; blocks exactly as the wrapped one does.

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "parallel/communicator.h"
#include <ATen/core/Tensor.h>

namespace dserve::worker::testing {

class FaultInjectingCommunicator final : public parallel::Communicator {
 public:
  explicit FaultInjectingCommunicator(parallel::Communicator& inner)
      : inner_(inner) {}

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string backend_name() const override { return inner_.backend_name(); }

  // Calls are numbered from 0; call `n` and every later one fail.
  void FailFromCall(int64_t n) { fail_from_ = n; }
  int64_t calls() const { return calls_; }
  int64_t broadcasts() const { return broadcasts_; }

  absl::Status Broadcast(at::Tensor& tensor, int root) override {
    ++broadcasts_;
    if (absl::Status s = Admit(); !s.ok()) return s;
    return inner_.Broadcast(tensor, root);
  }
  absl::Status AllReduceSum(at::Tensor& tensor) override {
    if (absl::Status s = Admit(); !s.ok()) return s;
    return inner_.AllReduceSum(tensor);
  }
  absl::Status AllGather(const at::Tensor& input, at::Tensor& output) override {
    if (absl::Status s = Admit(); !s.ok()) return s;
    return inner_.AllGather(input, output);
  }
  absl::Status AllToAll(const at::Tensor& input, at::Tensor& output) override {
    if (absl::Status s = Admit(); !s.ok()) return s;
    return inner_.AllToAll(input, output);
  }
  absl::Status Send(const at::Tensor& tensor, int peer) override {
    if (absl::Status s = Admit(); !s.ok()) return s;
    return inner_.Send(tensor, peer);
  }
  absl::Status Recv(at::Tensor& tensor, int peer) override {
    if (absl::Status s = Admit(); !s.ok()) return s;
    return inner_.Recv(tensor, peer);
  }
  absl::Status Barrier() override {
    if (absl::Status s = Admit(); !s.ok()) return s;
    return inner_.Barrier();
  }

 private:
  absl::Status Admit() {
    const int64_t call = calls_++;
    if (fail_from_.has_value() && call >= *fail_from_) {
      return absl::UnavailableError(
          absl::StrCat("injected failure at call ", call));
    }
    return absl::OkStatus();
  }

  parallel::Communicator& inner_;
  std::optional<int64_t> fail_from_;
  int64_t calls_ = 0;
  int64_t broadcasts_ = 0;
};

}  // namespace dserve::worker::testing

#endif  // DSERVE_WORKER_TESTING_FAULT_INJECTING_COMMUNICATOR_H_
