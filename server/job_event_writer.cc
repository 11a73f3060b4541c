#include "server/job_event_writer.h"

#include <algorithm>
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

bool StripLargeResultMedia(dserve::v1::Result* result) {
  if (result->ByteSizeLong() <= kMaxInlineResultBytes) return false;
  for (dserve::v1::Media& media : *result->mutable_media()) {
    media.set_chunked_size(static_cast<int64_t>(media.data().size()));
    media.clear_data();
  }
  return true;
}

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
      if (event.event.ByteSizeLong() > kMaxInlineResultBytes) {
        chunking_ = true;
        chunked_ = event.event;
      } else {
        pending_.push_back(event.event);
      }
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
  if (chunking_) {
    NextChunkLocked();
    writing_ = true;
    StartWrite(&in_flight_);
    return;
  }
  if (job_ended_) FinishLocked(end_status_);
}

void JobEventWriter::NextChunkLocked() {
  dserve::v1::Result* result = chunked_.mutable_result();
  while (chunk_media_ < result->media_size()) {
    dserve::v1::Media* media = result->mutable_media(chunk_media_);
    if (chunk_offset_ == 0) {
      media->set_chunked_size(static_cast<int64_t>(media->data().size()));
    }
    const int64_t total = media->chunked_size();
    if (chunk_offset_ >= total) {
      media->clear_data();
      ++chunk_media_;
      chunk_offset_ = 0;
      continue;
    }
    const int64_t n =
        std::min<int64_t>(kMediaChunkBytes, total - chunk_offset_);
    in_flight_.Clear();
    in_flight_.set_job_id(chunked_.job_id());
    dserve::v1::MediaChunk* chunk = in_flight_.mutable_media_chunk();
    chunk->set_media_index(chunk_media_);
    chunk->set_offset(chunk_offset_);
    chunk->set_total_bytes(total);
    // media->data() keeps its full length until the last chunk of it, so
    // offsets index the original bytes.
    chunk->set_data(media->data().substr(static_cast<size_t>(chunk_offset_),
                                         static_cast<size_t>(n)));
    chunk_offset_ += n;
    return;
  }
  in_flight_ = std::move(chunked_);
  chunked_.Clear();
  chunking_ = false;
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
