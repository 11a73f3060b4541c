#include "server/job_event_writer.h"

#include <utility>

#include "common/rpc_status.h"

namespace dserve::server {
namespace {

// Ends with a fixed status; used before a job exists.
class FailedWriter final
    : public grpc::ServerWriteReactor<dserve::v1::GenerateEvent> {
 public:
  explicit FailedWriter(const absl::Status& status) {
    Finish(common::ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<dserve::v1::GenerateEvent>* JobEventWriter::Failed(
    const absl::Status& status) {
  return new FailedWriter(status);
}

JobEventWriter::JobEventWriter(std::shared_ptr<scheduler::Job> job, Mode mode,
                               std::function<void()> on_client_cancel,
                               std::atomic<int>* open_streams)
    : job_(std::move(job)),
      mode_(mode),
      on_client_cancel_(std::move(on_client_cancel)),
      open_streams_(open_streams) {
  if (open_streams_ != nullptr) open_streams_->fetch_add(1);
  // Replays the current state synchronously, which starts the first write.
  listener_id_ =
      job_->AddListener([this](const scheduler::JobEvent& e) { OnJobEvent(e); });
}

void JobEventWriter::OnJobEvent(const scheduler::JobEvent& event) {
  absl::MutexLock lock(&mu_);
  if (finished_ || job_ended_) return;
  if (event.terminal) {
    job_ended_ = true;
    if (event.event.has_result()) {
      pending_.push_back(event.event);
      end_status_ = absl::OkStatus();
    } else if (mode_ == Mode::kWatch) {
      pending_.push_back(event.event);  // JobEnded
      end_status_ = absl::OkStatus();
    } else {
      end_status_ = event.status;
    }
  } else {
    pending_.push_back(event.event);
  }
  PumpLocked();
}

void JobEventWriter::PumpLocked() {
  if (writing_ || finished_) return;
  if (!pending_.empty()) {
    in_flight_ = std::move(pending_.front());
    pending_.pop_front();
    writing_ = true;
    StartWrite(&in_flight_);
    return;
  }
  if (job_ended_) FinishLocked(end_status_);
}

void JobEventWriter::FinishLocked(const absl::Status& status) {
  if (finished_) return;
  finished_ = true;
  Finish(common::ToGrpcStatus(status));
}

void JobEventWriter::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok) {
    // The stream broke (client gone); OnCancel follows and says why.
    FinishLocked(absl::CancelledError("the client stream broke"));
    return;
  }
  PumpLocked();
}

void JobEventWriter::OnCancel() {
  // Outside our lock: cancelling may end the job, which calls OnJobEvent.
  if (on_client_cancel_) on_client_cancel_();
  absl::MutexLock lock(&mu_);
  // A write in flight completes with ok=false and finishes from there.
  if (!writing_) {
    FinishLocked(absl::CancelledError("the client cancelled the call"));
  }
}

void JobEventWriter::OnDone() {
  // After RemoveListener returns the job never calls this reactor again.
  job_->RemoveListener(listener_id_);
  if (open_streams_ != nullptr) open_streams_->fetch_sub(1);
  delete this;
}

}  // namespace dserve::server
