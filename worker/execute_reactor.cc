#include "worker/execute_reactor.h"

#include <utility>

#include "absl/synchronization/mutex.h"
#include "common/rpc_status.h"

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionEvent;

class ExecuteReactor final : public grpc::ServerWriteReactor<ExecutionEvent> {
 public:
  static grpc::ServerWriteReactor<ExecutionEvent>* Start(
      std::shared_ptr<PlanCall> call) {
    auto reactor = std::shared_ptr<ExecuteReactor>(
        new ExecuteReactor(std::move(call)));
    reactor->self_ = reactor;
    std::weak_ptr<ExecuteReactor> weak = reactor;
    reactor->call_->SetWakeup([weak] {
      if (std::shared_ptr<ExecuteReactor> r = weak.lock()) r->Pump();
    });
    reactor->Pump();  // Events pushed before the wake-up was set.
    return reactor.get();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      // A write fails once the call is cancelled or broken.
      if (!ok) cancelled_ = true;
    }
    if (!ok) call_->Cancel();
    Pump();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    call_->Cancel();
    Pump();
  }

  void OnDone() override {
    call_->SetWakeup(nullptr);
    // Freed here, or when a wake-up still running lets go of it.
    std::shared_ptr<ExecuteReactor> self = std::move(self_);
  }

 private:
  explicit ExecuteReactor(std::shared_ptr<PlanCall> call)
      : call_(std::move(call)) {}

  // Starts the next write or the finish, if one is due and none runs.
  // gRPC is called with no lock held: a reaction may run inline.
  void Pump() {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || writing_) return;
      if (cancelled_) {
        status = absl::CancelledError("Execute was cancelled by the caller");
        finished_ = true;
        action = kFinish;
      } else {
        switch (call_->TryNext(&event_, &status)) {
          case PlanCall::Next::kEvent:
            writing_ = true;
            action = kWrite;
            break;
          case PlanCall::Next::kFinished:
            finished_ = true;
            action = kFinish;
            break;
          case PlanCall::Next::kTimeout:
            break;
        }
      }
    }
    if (action == kWrite) StartWrite(&event_);
    if (action == kFinish) Finish(common::ToGrpcStatus(status));
  }

  const std::shared_ptr<PlanCall> call_;
  std::shared_ptr<ExecuteReactor> self_;
  absl::Mutex mu_;
  // The event being written; only touched while writing_ is false.
  ExecutionEvent event_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

class FinishedReactor final : public grpc::ServerWriteReactor<ExecutionEvent> {
 public:
  explicit FinishedReactor(const absl::Status& status) {
    Finish(common::ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<ExecutionEvent>* StartExecuteReactor(
    std::shared_ptr<PlanCall> call) {
  return ExecuteReactor::Start(std::move(call));
}

grpc::ServerWriteReactor<ExecutionEvent>* FinishedExecuteReactor(
    const absl::Status& status) {
  return new FinishedReactor(status);
}

}  // namespace dserve::worker
