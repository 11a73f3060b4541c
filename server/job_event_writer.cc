#include "server/job_event_writer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/rpc_status.h"
#include "grpc/grpc.h"

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

dserve::v1::Job JobReply(const scheduler::Job& job) {
  dserve::v1::Job reply = job.ToProto(/*include_result=*/false);
  // A SUCCEEDED snapshot implies the result is set (Succeed sets both under
  // one lock and neither changes again).
  if (reply.state() != dserve::v1::JOB_STATE_SUCCEEDED) return reply;
  std::shared_ptr<const dserve::v1::Result> result = job.result();
  if (result == nullptr) return reply;
  if (result->ByteSizeLong() <= kMaxInlineResultBytes) {
    *reply.mutable_result() = *result;
  } else {
    *reply.mutable_result() = *job.result_summary();
  }
  return reply;
}

grpc::ServerWriteReactor<dserve::v1::GenerateEvent>* JobEventWriter::Failed(
    const absl::Status& status) {
  return new FailedWriter(status);
}

namespace {

JobEventWriter::Options LegacyOptions(std::function<void()> on_client_cancel,
                                      std::atomic<int>* open_streams) {
  JobEventWriter::Options options;
  options.on_client_cancel = std::move(on_client_cancel);
  options.open_streams = open_streams;
  return options;
}

}  // namespace

JobEventWriter::JobEventWriter(std::shared_ptr<scheduler::Job> job, Mode mode,
                               std::function<void()> on_client_cancel,
                               std::atomic<int>* open_streams)
    : JobEventWriter(std::move(job), mode,
                     LegacyOptions(std::move(on_client_cancel), open_streams)) {}

JobEventWriter::JobEventWriter(std::shared_ptr<scheduler::Job> job, Mode mode,
                               Options options)
    : job_(std::move(job)), mode_(mode), options_(std::move(options)) {
  if (options_.open_streams != nullptr) options_.open_streams->fetch_add(1);
  if (options_.watchdog != nullptr) options_.watchdog->Register(this);
  // Replays the current state synchronously, which starts the first write.
  listener_id_ =
      job_->AddListener([this](const scheduler::JobEvent& e) { OnJobEvent(e); });
}

void JobEventWriter::OnJobEvent(const scheduler::JobEvent& event) {
  absl::MutexLock lock(&mu_);
  if (finished_ || job_ended_) return;
  if (event.terminal) {
    job_ended_ = true;
    if (event.result != nullptr) {
      if (event.result->ByteSizeLong() > kMaxInlineResultBytes) {
        // Shared, not copied: chunks are cut from the job's buffer.
        chunking_ = true;
        chunked_ = event.result;
        chunked_summary_ = event.event;
      } else {
        dserve::v1::GenerateEvent inline_result;
        inline_result.set_job_id(event.event.job_id());
        *inline_result.mutable_result() = *event.result;
        pending_.push_back(std::move(inline_result));
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

void JobEventWriter::StartWriteLocked() {
  writing_ = true;
  write_started_ =
      options_.clock != nullptr ? options_.clock->Now() : absl::Now();
  StartWrite(&in_flight_);
}

void JobEventWriter::PumpLocked() {
  if (writing_ || finished_) return;
  if (!pending_.empty()) {
    in_flight_ = std::move(pending_.front());
    pending_.pop_front();
    StartWriteLocked();
    return;
  }
  if (chunking_) {
    NextChunkLocked();
    StartWriteLocked();
    return;
  }
  if (job_ended_) FinishLocked(end_status_);
}

void JobEventWriter::NextChunkLocked() {
  const dserve::v1::Result& result = *chunked_;
  while (chunk_media_ < result.media_size()) {
    const std::string& data = result.media(chunk_media_).data();
    const int64_t total = static_cast<int64_t>(data.size());
    if (chunk_offset_ >= total) {
      ++chunk_media_;
      chunk_offset_ = 0;
      continue;
    }
    const int64_t n =
        std::min<int64_t>(kMediaChunkBytes, total - chunk_offset_);
    in_flight_.Clear();
    in_flight_.set_job_id(chunked_summary_.job_id());
    dserve::v1::MediaChunk* chunk = in_flight_.mutable_media_chunk();
    chunk->set_media_index(chunk_media_);
    chunk->set_offset(chunk_offset_);
    chunk->set_total_bytes(total);
    chunk->set_data(data.data() + chunk_offset_, static_cast<size_t>(n));
    chunk_offset_ += n;
    return;
  }
  // The summary: every media's data empty, chunked_size its byte count.
  in_flight_ = std::move(chunked_summary_);
  chunked_summary_.Clear();
  chunked_.reset();
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

std::function<void()> JobEventWriter::CheckStall(absl::Time now,
                                                 absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (!writing_ || finished_ || stalled_ || now - write_started_ < timeout ||
      options_.context == nullptr) {
    return nullptr;
  }
  stalled_ = true;
  // The call outlives this reactor while the action holds a reference, and
  // the action runs without locks (its reactions may run inline).
  grpc_call* call = options_.context->c_call();
  grpc_call_ref(call);
  std::string message = absl::StrCat(
      "job ", job_->id(), ": the client did not read for ",
      absl::FormatDuration(timeout),
      " (--watcher_write_timeout_s); the stream was ended so a slow reader "
      "holds no server memory. Read the stream continuously, or fetch the "
      "result later with WatchJob/GetJob");
  return [call, message = std::move(message)] {
    grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                 message.c_str(), nullptr);
    grpc_call_unref(call);
  };
}

void JobEventWriter::OnCancel() {
  // Outside our lock: cancelling may end the job, which calls OnJobEvent.
  if (options_.on_client_cancel) options_.on_client_cancel();
  absl::MutexLock lock(&mu_);
  // A write in flight completes with ok=false and finishes from there.
  if (!writing_) {
    FinishLocked(absl::CancelledError("the client cancelled the call"));
  }
}

void JobEventWriter::OnDone() {
  // After these return neither the job nor the watchdog calls this reactor
  // again.
  job_->RemoveListener(listener_id_);
  if (options_.watchdog != nullptr) options_.watchdog->Unregister(this);
  if (options_.counted_on_job) job_->RemoveStream();
  if (options_.open_streams != nullptr) options_.open_streams->fetch_sub(1);
  delete this;
}

}  // namespace dserve::server
