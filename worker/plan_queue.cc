#include "worker/plan_queue.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace dserve::worker {

using ::dserve::internal::v1::ExecutionEvent;
using ::dserve::internal::v1::ExecutionPlan;

PlanCall::PlanCall(ExecutionPlan plan) : plan_(std::move(plan)) {}

void PlanCall::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

bool PlanCall::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

bool PlanCall::finished() const {
  absl::MutexLock lock(&mu_);
  return final_.has_value();
}

void PlanCall::Push(ExecutionEvent event) {
  std::function<void()> wakeup;
  {
    absl::MutexLock lock(&mu_);
    if (final_.has_value()) return;
    events_.push_back(std::move(event));
    wakeup = wakeup_;
  }
  if (wakeup) wakeup();
}

void PlanCall::Finish(absl::Status status) {
  std::function<void()> wakeup;
  {
    absl::MutexLock lock(&mu_);
    if (final_.has_value()) return;
    final_ = std::move(status);
    wakeup = wakeup_;
  }
  if (wakeup) wakeup();
}

void PlanCall::SetWakeup(std::function<void()> wakeup) {
  absl::MutexLock lock(&mu_);
  wakeup_ = std::move(wakeup);
}

PlanCall::Next PlanCall::TryNext(ExecutionEvent* event, absl::Status* status) {
  return WaitNext(absl::ZeroDuration(), event, status);
}

PlanCall::Next PlanCall::WaitNext(absl::Duration timeout, ExecutionEvent* event,
                                  absl::Status* status) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !events_.empty() || final_.has_value();
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (!events_.empty()) {
    *event = std::move(events_.front());
    events_.pop_front();
    return Next::kEvent;
  }
  if (final_.has_value()) {
    *status = *final_;
    return Next::kFinished;
  }
  return Next::kTimeout;
}

PlanQueue::PlanQueue(int capacity) : capacity_(capacity) {}

absl::Status PlanQueue::Push(std::shared_ptr<PlanCall> call) {
  absl::MutexLock lock(&mu_);
  if (closed_) {
    return absl::UnavailableError("replica leader is shutting down");
  }
  // A call whose caller already gave up must not hold a place.
  for (auto it = calls_.begin(); it != calls_.end();) {
    if ((*it)->cancelled()) {
      (*it)->Finish(absl::CancelledError("cancelled while queued"));
      it = calls_.erase(it);
    } else {
      ++it;
    }
  }
  if (static_cast<int>(calls_.size()) >= capacity_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("replica leader already has ", calls_.size(),
                     " plans waiting; capacity ", capacity_));
  }
  calls_.push_back(std::move(call));
  return absl::OkStatus();
}

std::shared_ptr<PlanCall> PlanQueue::PopFor(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]()
                   ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !calls_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) return nullptr;
  std::shared_ptr<PlanCall> call = std::move(calls_.front());
  calls_.pop_front();
  return call;
}

void PlanQueue::Close(const absl::Status& status) {
  std::deque<std::shared_ptr<PlanCall>> pending;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    pending.swap(calls_);
  }
  for (auto& call : pending) call->Finish(status);
}

int PlanQueue::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(calls_.size());
}

}  // namespace dserve::worker
