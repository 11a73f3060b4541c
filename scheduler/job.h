#ifndef DSERVE_SCHEDULER_JOB_H_
#define DSERVE_SCHEDULER_JOB_H_

// Job: one admitted generation request, from the queue to its terminal state.
//
// A Job owns
//  * its identity and scheduling keys (id, priority, arrival sequence,
//    optional deadline), fixed at construction, so the queue can order jobs
//    without taking the job's lock;
//  * the request as submitted and the effective request (defaults resolved,
//    seed chosen);
//  * its state machine QUEUED -> RUNNING -> {SUCCEEDED, FAILED, CANCELLED,
//    DEADLINE_EXCEEDED}. Exactly one terminal transition ever happens: a
//    second Succeed/Finish is a no-op that returns false;
//  * its event sink: listeners (a Generate or WatchJob stream) that get every
//    event. A listener added late first receives the current state (Queued,
//    or Started plus the latest Progress, or the terminal event), then
//    follows.
//
// A succeeded job's result is one immutable buffer (result()), shared by
// the job, every listener's terminal event, GetJob replies and every stream
// that sends it: watchers never copy it.
//
// Thread-safe. No call blocks, but listeners run synchronously on the caller's
// thread while the job's lock is held (this keeps events in order), so a
// listener must not call back into its Job and must not block.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::scheduler {

// One event for a job's listeners.
struct JobEvent {
  // job_id is always set. For a terminal event without result, `event` holds
  // `ended` (WatchJob writes it; Generate ends its stream with `status`).
  // For a succeeded job, `event.result` is the result's summary (every field
  // but the media bytes: each media's data is empty and its chunked_size
  // says how many bytes it has) and `result` is the full result.
  dserve::v1::GenerateEvent event;
  // The job's shared result on a succeeded job's terminal event, else null.
  std::shared_ptr<const dserve::v1::Result> result;
  // True for the last event a listener will ever get.
  bool terminal = false;
  // OK unless the job ended without a result.
  absl::Status status;
};

// Immutable description of a job, fixed when it is admitted.
struct JobSpec {
  std::string id;
  // The request exactly as the client sent it.
  dserve::v1::GenerateRequest request;
  // Defaults resolved and seed chosen; what the replica runs.
  dserve::v1::GenerateRequest effective_request;
  // Arrival order among all jobs of this server (FIFO tie-break, paging).
  int64_t sequence = 0;
  // The client's deadline, if any. The scheduler expires the job after it.
  std::optional<absl::Time> deadline;
  absl::Time create_time = absl::UnixEpoch();
  // Who submitted it ("anonymous", or the caller's bearer credential):
  // client_request_id is unique only within one principal. Never echoed.
  std::string principal = "anonymous";
};

class Job {
 public:
  using Listener = std::function<void(const JobEvent&)>;

  explicit Job(JobSpec spec);
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  // Immutable keys: no lock taken.
  const std::string& id() const { return spec_.id; }
  int priority() const { return spec_.effective_request.priority(); }
  int64_t sequence() const { return spec_.sequence; }
  const std::optional<absl::Time>& deadline() const { return spec_.deadline; }
  absl::Time create_time() const { return spec_.create_time; }
  const std::string& principal() const { return spec_.principal; }
  const dserve::v1::GenerateRequest& request() const { return spec_.request; }
  const dserve::v1::GenerateRequest& effective_request() const {
    return spec_.effective_request;
  }

  dserve::v1::JobState state() const;
  bool is_terminal() const;
  // Replica running or that ran the job; -1 while queued.
  int replica() const;
  std::optional<absl::Time> start_time() const;
  // Set once the job reached a terminal state.
  std::optional<absl::Time> end_time() const;

  // Records the queue position at admission (and later updates) and tells
  // listeners. Ignored unless QUEUED. Before the first call, a new listener
  // gets no replay (the job is not admitted yet).
  void MarkQueued(int position);
  // QUEUED -> RUNNING. Returns false (and changes nothing) in any other state.
  bool MarkStarted(int replica, const dserve::v1::MeshLayout& mesh,
                   int batch_size, absl::Time now);
  // One denoising step finished. Ignored unless RUNNING. `preview` may be
  // null.
  void ReportProgress(int step, int total, double elapsed_ms,
                      const dserve::v1::Media* preview);
  // Progress outside the denoising loop: ENCODE (step 0, total = denoising
  // steps) or DECODE (decode chunks done of total). Emits a Progress of that
  // stage; the job's step count (ToProto's step) stays the denoising one.
  // Ignored unless RUNNING.
  void ReportStage(dserve::v1::ProgressStage stage, int step, int total,
                   double elapsed_ms);
  // -> SUCCEEDED with `result`, which becomes the job's shared result. False
  // if the job already ended.
  bool Succeed(dserve::v1::Result result, absl::Time now);
  // The shared result once SUCCEEDED, else null. Never copied by the job.
  std::shared_ptr<const dserve::v1::Result> result() const;
  // The result without media bytes (see JobEvent) once SUCCEEDED, else null.
  std::shared_ptr<const dserve::v1::Result> result_summary() const;
  // Serialized size of the result once SUCCEEDED, else 0.
  int64_t result_bytes() const;
  // -> terminal state chosen by the status code: CANCELLED, DEADLINE_EXCEEDED,
  // otherwise FAILED (an OK status is turned into INTERNAL, as a job cannot
  // "fail successfully"). False if the job already ended.
  bool Finish(absl::Status status, absl::Time now);

  // RUNNING -> QUEUED, to retry the job after its replica died. Keeps the
  // id, seed and listeners (they see Queued and Started again); progress
  // starts over. Returns false (and changes nothing) in any other state.
  bool Requeue();
  // How often Requeue succeeded.
  int retries() const;
  // RUNNING -> QUEUED like Requeue, but to run alone: the job's batch failed
  // as a whole, and alone it gets a verdict of its own (one bad job of a
  // batch must not fail the others or show them its error). Does not count
  // as a retry. False (nothing changed) unless RUNNING.
  bool RequeueAlone();
  // Set by RequeueAlone: never batch this job again.
  bool run_alone() const;

  // Asks for cancellation; the first reason wins. Returns false if the job
  // already ended. The scheduler acts on it (queue removal or replica
  // cancel); the reason becomes the job's final status.
  bool RequestCancel(absl::Status reason);
  std::optional<absl::Status> cancel_reason() const;

  // Runs `hook` once when the job ends (Succeed or Finish), on the thread
  // that ended it and after the job's lock is released, so the hook may call
  // any method of this job (the job table uses it to enforce its result
  // budget). Runs at once if the job already ended. Replaces an earlier
  // hook. ClearEndHook removes it and waits for a running call to return.
  void SetEndHook(std::function<void(Job&)> hook);
  void ClearEndHook();

  // Open streams (Generate/WatchJob) of this job. AddStream counts one more
  // and returns true, or returns false (and counts nothing) when
  // `max_streams` (> 0) are already open; RemoveStream undoes one AddStream.
  bool AddStream(int max_streams);
  void RemoveStream();
  int open_streams() const;

  // Adds a listener and replays the current state to it before returning.
  // Returns an id for RemoveListener. After RemoveListener returns, the
  // listener is never called again.
  int AddListener(Listener listener);
  void RemoveListener(int listener_id);

  // Snapshot for GetJob/ListJobs/CancelJob. Result media only when
  // `include_result` (ListJobs leaves them out).
  dserve::v1::Job ToProto(bool include_result) const;

 private:
  void EmitLocked(const JobEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  JobEvent TerminalEventLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  dserve::v1::GenerateEvent NewEvent() const;
  void RunEndHook();
  // RUNNING -> QUEUED; false in any other state.
  bool BackToQueueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Finish, without running the end hook.
  bool EndWithStatus(absl::Status status, absl::Time now);

  const JobSpec spec_;

  mutable absl::Mutex mu_;
  dserve::v1::JobState state_ ABSL_GUARDED_BY(mu_) =
      dserve::v1::JOB_STATE_QUEUED;
  // False until the queue admitted the job: there is no position to replay.
  bool admitted_ ABSL_GUARDED_BY(mu_) = false;
  int position_ ABSL_GUARDED_BY(mu_) = 0;
  int replica_ ABSL_GUARDED_BY(mu_) = -1;
  dserve::v1::Started started_ ABSL_GUARDED_BY(mu_);
  std::optional<dserve::v1::Progress> last_progress_ ABSL_GUARDED_BY(mu_);
  int step_ ABSL_GUARDED_BY(mu_) = 0;
  int retries_ ABSL_GUARDED_BY(mu_) = 0;
  bool run_alone_ ABSL_GUARDED_BY(mu_) = false;
  int total_steps_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const dserve::v1::Result> result_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const dserve::v1::Result> result_summary_
      ABSL_GUARDED_BY(mu_);
  int64_t result_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> cancel_reason_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> start_time_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> end_time_ ABSL_GUARDED_BY(mu_);
  int next_listener_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  int open_streams_ ABSL_GUARDED_BY(mu_) = 0;

  // Taken after mu_ is released, never while holding it.
  absl::Mutex hook_mu_;
  std::function<void(Job&)> end_hook_ ABSL_GUARDED_BY(hook_mu_);
  bool end_hook_ran_ ABSL_GUARDED_BY(hook_mu_) = false;
};

// `result` without media bytes: each media keeps its other fields, its data
// is empty and chunked_size is its byte count. Does not copy the bytes.
dserve::v1::Result SummarizeResult(dserve::v1::Result* result);

// "JOB_STATE_RUNNING" -> "RUNNING", for logs and messages.
std::string JobStateName(dserve::v1::JobState state);

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_JOB_H_
