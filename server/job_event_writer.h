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
// exceeds gRPC's default 4 MiB receive limit. Chunks are cut from the job's
// shared result (Job::result()): a stream holds a reference to it, never a
// copy, and at most one chunk of its own at a time.
//
// Slow consumers: with a StreamWatchdog, a write the client has not taken
// for the watchdog's timeout ends the call with RESOURCE_EXHAUSTED (the
// trailers travel outside HTTP/2 flow control, so even a client that never
// reads again learns why). A Generate stream ended so cancels its job like a
// disconnect would.
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
#include "scheduler/clock.h"
#include "scheduler/job.h"
#include "server/stream_watchdog.h"

namespace dserve::server {

// Results whose serialized size exceeds this travel in MediaChunk events.
inline constexpr size_t kMaxInlineResultBytes = 1 << 20;
inline constexpr size_t kMediaChunkBytes = 1 << 20;

// Moves every media's bytes out of `result` (data cleared, chunked_size
// set) when the result is larger than kMaxInlineResultBytes: what GetJob
// returns for results that no default gRPC client could receive. Returns
// whether it did.
bool StripLargeResultMedia(dserve::v1::Result* result);

// The job as a unary reply (GetJob, SubmitJob, CancelJob): the result's
// media bytes inline when the result is at most kMaxInlineResultBytes, else
// its summary (data empty, chunked_size set). Copies only what the reply
// carries, never a large result.
dserve::v1::Job JobReply(const scheduler::Job& job);

class JobEventWriter final
    : public grpc::ServerWriteReactor<dserve::v1::GenerateEvent>,
      public StallableStream {
 public:
  enum class Mode { kGenerate, kWatch };

  struct Options {
    // Runs (on a gRPC thread) when the client cancels or disconnects; may
    // be empty.
    std::function<void()> on_client_cancel;
    // Counts this stream from construction until OnDone (may be null; must
    // outlive the reactor), so a draining server knows when every stream
    // has flushed.
    std::atomic<int>* open_streams = nullptr;
    // The call, to end it with RESOURCE_EXHAUSTED when it stalls; with a
    // null context or watchdog a stalled stream waits forever.
    grpc::CallbackServerContext* context = nullptr;
    // Not owned; must outlive the reactor.
    StreamWatchdog* watchdog = nullptr;
    // Clock of write start times (the watchdog's); null = real time.
    const scheduler::Clock* clock = nullptr;
    // The caller counted this stream on the job (Job::AddStream); OnDone
    // calls Job::RemoveStream.
    bool counted_on_job = false;
  };

  // Starts streaming `job` at once (its current state first).
  JobEventWriter(std::shared_ptr<scheduler::Job> job, Mode mode,
                 Options options);

  // The same with only Options::on_client_cancel and open_streams.
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

  // StallableStream.
  std::function<void()> CheckStall(absl::Time now,
                                   absl::Duration timeout) override;

 private:
  // StartWrite of in_flight_, noting when it started.
  void StartWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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
  const Options options_;
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
  // When the write in flight started (valid while writing_).
  absl::Time write_started_ ABSL_GUARDED_BY(mu_);
  // Set once the watchdog ended this stream.
  bool stalled_ ABSL_GUARDED_BY(mu_) = false;
  // A large Result being sent in chunks: the job's shared result (read
  // only) and the summary event written after the last chunk.
  bool chunking_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const dserve::v1::Result> chunked_ ABSL_GUARDED_BY(mu_);
  dserve::v1::GenerateEvent chunked_summary_ ABSL_GUARDED_BY(mu_);
  int chunk_media_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t chunk_offset_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dserve::server

#endif  // DSERVE_SERVER_JOB_EVENT_WRITER_H_
