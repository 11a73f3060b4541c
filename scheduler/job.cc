#include "scheduler/job.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dserve::scheduler {
namespace {

using ::dserve::v1::JobState;

int64_t ToUnixMillisOrZero(const std::optional<absl::Time>& t) {
  return t.has_value() ? absl::ToUnixMillis(*t) : 0;
}

bool IsTerminalState(JobState state) {
  return state == dserve::v1::JOB_STATE_SUCCEEDED ||
         state == dserve::v1::JOB_STATE_FAILED ||
         state == dserve::v1::JOB_STATE_CANCELLED ||
         state == dserve::v1::JOB_STATE_DEADLINE_EXCEEDED;
}

}  // namespace

dserve::v1::Result SummarizeResult(dserve::v1::Result* result) {
  // Move the bytes aside, copy what is left, move them back: the summary
  // costs the metadata only, however large the media.
  std::vector<std::string> bytes(static_cast<size_t>(result->media_size()));
  for (int i = 0; i < result->media_size(); ++i) {
    result->mutable_media(i)->mutable_data()->swap(bytes[i]);
  }
  dserve::v1::Result summary = *result;
  for (int i = 0; i < result->media_size(); ++i) {
    result->mutable_media(i)->mutable_data()->swap(bytes[i]);
    summary.mutable_media(i)->set_chunked_size(
        static_cast<int64_t>(result->media(i).data().size()));
  }
  return summary;
}

std::string JobStateName(JobState state) {
  std::string name = dserve::v1::JobState_Name(state);
  constexpr char kPrefix[] = "JOB_STATE_";
  if (name.rfind(kPrefix, 0) == 0) name = name.substr(sizeof(kPrefix) - 1);
  return name;
}

Job::Job(JobSpec spec) : spec_(std::move(spec)) {
  total_steps_ = spec_.effective_request.num_inference_steps();
}

JobState Job::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

bool Job::is_terminal() const {
  absl::MutexLock lock(&mu_);
  return IsTerminalState(state_);
}

int Job::replica() const {
  absl::MutexLock lock(&mu_);
  return replica_;
}

std::optional<absl::Time> Job::start_time() const {
  absl::MutexLock lock(&mu_);
  return start_time_;
}

std::optional<absl::Time> Job::end_time() const {
  absl::MutexLock lock(&mu_);
  return end_time_;
}

dserve::v1::GenerateEvent Job::NewEvent() const {
  dserve::v1::GenerateEvent event;
  event.set_job_id(spec_.id);
  return event;
}

void Job::MarkQueued(int position) {
  absl::MutexLock lock(&mu_);
  if (state_ != dserve::v1::JOB_STATE_QUEUED) return;
  admitted_ = true;
  position_ = position;
  JobEvent event{NewEvent()};
  event.event.mutable_queued()->set_position(position);
  EmitLocked(event);
}

bool Job::MarkStarted(int replica, const dserve::v1::MeshLayout& mesh,
                      int batch_size, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (state_ != dserve::v1::JOB_STATE_QUEUED) return false;
  state_ = dserve::v1::JOB_STATE_RUNNING;
  replica_ = replica;
  start_time_ = now;
  started_.set_replica(replica);
  *started_.mutable_mesh() = mesh;
  started_.set_batch_size(batch_size);
  JobEvent event{NewEvent()};
  *event.event.mutable_started() = started_;
  EmitLocked(event);
  return true;
}

bool Job::BackToQueueLocked() {
  if (state_ != dserve::v1::JOB_STATE_RUNNING) return false;
  state_ = dserve::v1::JOB_STATE_QUEUED;
  replica_ = -1;
  start_time_.reset();
  step_ = 0;
  started_.Clear();
  return true;
}

bool Job::Requeue() {
  absl::MutexLock lock(&mu_);
  if (!BackToQueueLocked()) return false;
  ++retries_;
  return true;
}

bool Job::RequeueAlone() {
  absl::MutexLock lock(&mu_);
  if (!BackToQueueLocked()) return false;
  run_alone_ = true;
  return true;
}

bool Job::run_alone() const {
  absl::MutexLock lock(&mu_);
  return run_alone_;
}

int Job::retries() const {
  absl::MutexLock lock(&mu_);
  return retries_;
}

void Job::ReportProgress(int step, int total, double elapsed_ms,
                         const dserve::v1::Media* preview) {
  absl::MutexLock lock(&mu_);
  if (state_ != dserve::v1::JOB_STATE_RUNNING) return;
  step_ = step;
  total_steps_ = total;
  dserve::v1::Progress progress;
  progress.set_step(step);
  progress.set_total(total);
  progress.set_elapsed_ms(elapsed_ms);
  progress.set_stage(dserve::v1::PROGRESS_STAGE_DENOISE);
  if (preview != nullptr) *progress.mutable_preview() = *preview;
  JobEvent event{NewEvent()};
  *event.event.mutable_progress() = progress;
  // Replay to late listeners needs only the step count; dropping the preview
  // keeps a long job from pinning old images.
  progress.clear_preview();
  last_progress_ = std::move(progress);
  EmitLocked(event);
}

void Job::ReportStage(dserve::v1::ProgressStage stage, int step, int total,
                      double elapsed_ms) {
  absl::MutexLock lock(&mu_);
  if (state_ != dserve::v1::JOB_STATE_RUNNING) return;
  // ENCODE's total is the denoising steps: known before the first step.
  if (stage == dserve::v1::PROGRESS_STAGE_ENCODE) total_steps_ = total;
  dserve::v1::Progress progress;
  progress.set_step(step);
  progress.set_total(total);
  progress.set_elapsed_ms(elapsed_ms);
  progress.set_stage(stage);
  JobEvent event{NewEvent()};
  *event.event.mutable_progress() = progress;
  // A late listener sees where the job is now, whatever the stage.
  last_progress_ = std::move(progress);
  EmitLocked(event);
}

bool Job::Succeed(dserve::v1::Result result, absl::Time now) {
  // Built before the lock: the summary and the size walk the whole result.
  auto summary =
      std::make_shared<const dserve::v1::Result>(SummarizeResult(&result));
  const int64_t bytes = static_cast<int64_t>(result.ByteSizeLong());
  auto shared = std::make_shared<const dserve::v1::Result>(std::move(result));
  {
    absl::MutexLock lock(&mu_);
    if (IsTerminalState(state_)) return false;
    state_ = dserve::v1::JOB_STATE_SUCCEEDED;
    result_ = std::move(shared);
    result_summary_ = std::move(summary);
    result_bytes_ = bytes;
    final_status_ = absl::OkStatus();
    end_time_ = now;
    step_ = total_steps_;
    EmitLocked(TerminalEventLocked());
    listeners_.clear();
  }
  RunEndHook();
  return true;
}

std::shared_ptr<const dserve::v1::Result> Job::result() const {
  absl::MutexLock lock(&mu_);
  return result_;
}

std::shared_ptr<const dserve::v1::Result> Job::result_summary() const {
  absl::MutexLock lock(&mu_);
  return result_summary_;
}

int64_t Job::result_bytes() const {
  absl::MutexLock lock(&mu_);
  return result_bytes_;
}

bool Job::Finish(absl::Status status, absl::Time now) {
  if (!EndWithStatus(std::move(status), now)) return false;
  RunEndHook();
  return true;
}

bool Job::EndWithStatus(absl::Status status, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (IsTerminalState(state_)) return false;
  if (status.ok()) {
    status = absl::InternalError(absl::StrCat(
        "job ", spec_.id, " ended without a result and without an error"));
  }
  switch (status.code()) {
    case absl::StatusCode::kCancelled:
      state_ = dserve::v1::JOB_STATE_CANCELLED;
      break;
    case absl::StatusCode::kDeadlineExceeded:
      state_ = dserve::v1::JOB_STATE_DEADLINE_EXCEEDED;
      break;
    default:
      state_ = dserve::v1::JOB_STATE_FAILED;
  }
  final_status_ = std::move(status);
  end_time_ = now;
  EmitLocked(TerminalEventLocked());
  listeners_.clear();
  return true;
}

JobEvent Job::TerminalEventLocked() const {
  JobEvent event{NewEvent()};
  event.terminal = true;
  event.status = final_status_;
  if (state_ == dserve::v1::JOB_STATE_SUCCEEDED) {
    *event.event.mutable_result() = *result_summary_;
    event.result = result_;
  } else {
    // JobEnded carries the state and the status (code + message) so a
    // watcher learns why the job ended.
    auto* ended = event.event.mutable_ended();
    ended->set_state(state_);
    ended->set_status_code(static_cast<int>(final_status_.code()));
    ended->set_status_message(std::string(final_status_.message()));
  }
  return event;
}

bool Job::RequestCancel(absl::Status reason) {
  absl::MutexLock lock(&mu_);
  if (IsTerminalState(state_)) return false;
  if (!cancel_reason_.has_value()) cancel_reason_ = std::move(reason);
  return true;
}

std::optional<absl::Status> Job::cancel_reason() const {
  absl::MutexLock lock(&mu_);
  return cancel_reason_;
}

int Job::AddListener(Listener listener) {
  absl::MutexLock lock(&mu_);
  const int id = next_listener_id_++;
  // Replay the current state first, so a late watcher sees the same shape of
  // stream as an early one.
  if (IsTerminalState(state_)) {
    listener(TerminalEventLocked());
    return id;
  }
  if (state_ == dserve::v1::JOB_STATE_QUEUED) {
    if (!admitted_) {
      listeners_.emplace(id, std::move(listener));
      return id;
    }
    JobEvent event{NewEvent()};
    event.event.mutable_queued()->set_position(position_);
    listener(event);
  } else {
    JobEvent event{NewEvent()};
    *event.event.mutable_started() = started_;
    listener(event);
    if (last_progress_.has_value()) {
      JobEvent progress{NewEvent()};
      *progress.event.mutable_progress() = *last_progress_;
      listener(progress);
    }
  }
  listeners_.emplace(id, std::move(listener));
  return id;
}

void Job::SetEndHook(std::function<void(Job&)> hook) {
  absl::MutexLock lock(&hook_mu_);
  end_hook_ = std::move(hook);
  if (end_hook_ && !end_hook_ran_ && is_terminal()) {
    end_hook_ran_ = true;
    end_hook_(*this);
  }
}

void Job::ClearEndHook() {
  absl::MutexLock lock(&hook_mu_);
  end_hook_ = nullptr;
}

void Job::RunEndHook() {
  absl::MutexLock lock(&hook_mu_);
  if (!end_hook_ || end_hook_ran_) return;
  end_hook_ran_ = true;
  end_hook_(*this);
}

bool Job::AddStream(int max_streams) {
  absl::MutexLock lock(&mu_);
  if (max_streams > 0 && open_streams_ >= max_streams) return false;
  ++open_streams_;
  return true;
}

void Job::RemoveStream() {
  absl::MutexLock lock(&mu_);
  if (open_streams_ > 0) --open_streams_;
}

int Job::open_streams() const {
  absl::MutexLock lock(&mu_);
  return open_streams_;
}

void Job::RemoveListener(int listener_id) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(listener_id);
}

void Job::EmitLocked(const JobEvent& event) {
  for (auto& [id, listener] : listeners_) listener(event);
}

dserve::v1::Job Job::ToProto(bool include_result) const {
  absl::MutexLock lock(&mu_);
  dserve::v1::Job job;
  job.set_job_id(spec_.id);
  job.set_state(state_);
  *job.mutable_request() = spec_.request;
  job.set_replica(replica_);
  job.set_step(step_);
  job.set_total_steps(total_steps_);
  if (state_ == dserve::v1::JOB_STATE_SUCCEEDED) {
    if (include_result) {
      *job.mutable_result() = *result_;
    } else {
      *job.mutable_result() = *result_summary_;
      job.mutable_result()->clear_media();
    }
  }
  if (IsTerminalState(state_)) {
    job.set_status_code(static_cast<int>(final_status_.code()));
    job.set_status_message(std::string(final_status_.message()));
  }
  job.set_create_time_ms(absl::ToUnixMillis(spec_.create_time));
  job.set_start_time_ms(ToUnixMillisOrZero(start_time_));
  job.set_end_time_ms(ToUnixMillisOrZero(end_time_));
  return job;
}

}  // namespace dserve::scheduler
