#ifndef DSERVE_SERVER_JOB_EVENT_WRITER_H_
#define DSERVE_SERVER_JOB_EVENT_WRITER_H_

// JobEventWriter: the server-streaming half of Generate and WatchJob. A
// gRPC ServerWriteReactor that listens to one Job and writes its events to
// the client, one outstanding write at a time, with a queue of pending
// events (after gRPC's route_guide callback example: OnWriteDone drives the
// next write, OnDone deletes the reactor).
//
// Modes:
//  * kGenerate: Queued, Started, Progress..., Result, then OK; a job that
//    ends without a result ends the stream with the job's status. A client
//    that cancels or disconnects cancels the job (`on_client_cancel`).
//  * kWatch: the same events, but a job that ends without a result writes a
//    JobEnded event and ends with OK; a watcher leaving does not touch the
//    job.
//
// Large results: a Result over kMaxInlineResultBytes is written as
// MediaChunk events of at most kMediaChunkBytes (media order, then offset
// order), produced one at a time as the client reads, then the Result with
// those media's data moved out (Media.chunked_size set), so no message
// exceeds gRPC's default 4 MiB receive limit.
//
// Lifetime: created with new, owned by gRPC, deletes itself in OnDone
// (after removing its listener from the job, so the job never calls a dead
// reactor). Thread-safe: job events arrive on the scheduler's thread, gRPC
// reactions on gRPC's. The reactor never calls into the job while holding
// its own lock (the job calls it with the job's lock held).

#include <atomic>
#include <deque>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "proto/dserve/v1/diffusion_service.pb.h"
#include "scheduler/job.h"

namespace dserve::server {

// Results whose serialized size exceeds this travel in MediaChunk events.
inline constexpr size_t kMaxInlineResultBytes = 1 << 20;
inline constexpr size_t kMediaChunkBytes = 1 << 20;

// Moves every media's bytes out of `result` (data cleared, chunked_size
// set) when the result is larger than kMaxInlineResultBytes: what GetJob
// returns for results that no default gRPC client could receive. Returns
// whether it did.
bool StripLargeResultMedia(dserve::v1::Result* result);

class JobEventWriter final
    : public grpc::ServerWriteReactor<dserve::v1::GenerateEvent> {
 public:
  enum class Mode { kGenerate, kWatch };

  // Starts streaming `job` at once (its current state first).
  // `on_client_cancel` runs (on a gRPC thread) when the client cancels or
  // disconnects; may be empty. `open_streams` (may be null; must outlive
  // the reactor) counts this stream from construction until OnDone, so a
  // draining server knows when every stream has flushed.
  JobEventWriter(std::shared_ptr<scheduler::Job> job, Mode mode,
                 std::function<void()> on_client_cancel,
                 std::atomic<int>* open_streams = nullptr);

  // A stream that ends at once with `status` (a request rejected before it
  // became a job).
  static grpc::ServerWriteReactor<dserve::v1::GenerateEvent>* Failed(
      const absl::Status& status);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void OnJobEvent(const scheduler::JobEvent& event);
  // Starts the next write, or finishes once the last event was written.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts the next MediaChunk (or, after the last, the stripped Result) of
  // `chunked_` into in_flight_.
  void NextChunkLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<scheduler::Job> job_;
  const Mode mode_;
  const std::function<void()> on_client_cancel_;
  std::atomic<int>* const open_streams_;
  int listener_id_ = 0;

  absl::Mutex mu_;
  std::deque<dserve::v1::GenerateEvent> pending_ ABSL_GUARDED_BY(mu_);
  // The event being written; gRPC reads it until OnWriteDone.
  dserve::v1::GenerateEvent in_flight_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // Set by the job's terminal event: the status to end with once the queue
  // is written.
  bool job_ended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status end_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // A large Result being sent in chunks; its media's data is consumed from
  // the front as chunks go out.
  bool chunking_ ABSL_GUARDED_BY(mu_) = false;
  dserve::v1::GenerateEvent chunked_ ABSL_GUARDED_BY(mu_);
  int chunk_media_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t chunk_offset_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dserve::server

#endif  // DSERVE_SERVER_JOB_EVENT_WRITER_H_
