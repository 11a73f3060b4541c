#include "scheduler/testing/fake_replica.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "parallel/mesh_layout.h"

namespace dserve::scheduler::testing {

FakeReplica::FakeReplica(int index, dserve::v1::ReplicaState state)
    : index_(index), state_(state) {}

dserve::v1::ReplicaInfo FakeReplica::Info() const {
  absl::MutexLock lock(&mu_);
  dserve::v1::ReplicaInfo info;
  info.set_index(index_);
  info.set_state(state_);
  info.set_world_size(1);
  *info.mutable_mesh() =
      parallel::MeshLayoutFromDegrees(parallel::MeshDegrees{});
  info.set_jobs_completed(jobs_completed_);
  if (plan_.has_value() && plan_->items_size() > 0) {
    info.set_current_job_id(plan_->items(0).job_id());
  }
  return info;
}

std::vector<dserve::v1::ModelInfo> FakeReplica::Models() const {
  absl::MutexLock lock(&mu_);
  return models_;
}

absl::Status FakeReplica::Run(dserve::internal::v1::ExecutionPlan plan,
                              EventCallback on_event, DoneCallback on_done) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != dserve::v1::REPLICA_STATE_READY) {
      return absl::FailedPreconditionError(absl::StrCat(
          "replica ", index_, " is ", dserve::v1::ReplicaState_Name(state_),
          ", not READY"));
    }
    state_ = dserve::v1::REPLICA_STATE_BUSY;
    ++runs_;
    cancel_requested_ = false;
    plan_ = std::move(plan);
    on_event_ = std::move(on_event);
    on_done_ = std::move(on_done);
  }
  NotifyObserver();
  return absl::OkStatus();
}

void FakeReplica::Cancel() {
  absl::MutexLock lock(&mu_);
  if (on_done_) cancel_requested_ = true;
}

void FakeReplica::SetStateObserver(std::function<void()> observer) {
  absl::MutexLock lock(&mu_);
  observer_ = std::move(observer);
}

void FakeReplica::Shutdown(absl::Duration) {
  if (running()) EndWith(absl::UnavailableError("replica shut down"));
  SetState(dserve::v1::REPLICA_STATE_FAILED);
}

void FakeReplica::SetState(dserve::v1::ReplicaState state) {
  {
    absl::MutexLock lock(&mu_);
    state_ = state;
  }
  NotifyObserver();
}

void FakeReplica::SetModels(std::vector<dserve::v1::ModelInfo> models) {
  absl::MutexLock lock(&mu_);
  models_ = std::move(models);
}

void FakeReplica::SetRestartPending(bool pending) {
  absl::MutexLock lock(&mu_);
  restart_pending_ = pending;
}

bool FakeReplica::RestartPending() const {
  absl::MutexLock lock(&mu_);
  return state_ == dserve::v1::REPLICA_STATE_FAILED && restart_pending_;
}

int FakeReplica::runs() const {
  absl::MutexLock lock(&mu_);
  return runs_;
}

bool FakeReplica::running() const {
  absl::MutexLock lock(&mu_);
  return static_cast<bool>(on_done_);
}

bool FakeReplica::cancel_requested() const {
  absl::MutexLock lock(&mu_);
  return cancel_requested_;
}

std::optional<dserve::internal::v1::ExecutionPlan> FakeReplica::last_plan()
    const {
  absl::MutexLock lock(&mu_);
  return plan_;
}

void FakeReplica::EmitStep(int step, const std::string& preview_job_id) {
  EventCallback on_event;
  dserve::internal::v1::ExecutionEvent event;
  {
    absl::MutexLock lock(&mu_);
    on_event = on_event_;
    dserve::internal::v1::StepDone* done = event.mutable_step();
    done->set_step(step);
    done->set_total(plan_->num_inference_steps());
    done->set_step_ms(1.0);
    if (!preview_job_id.empty()) {
      dserve::v1::Media& preview = (*done->mutable_previews())[preview_job_id];
      preview.set_mime_type("image/png");
      preview.set_data("p");
    }
  }
  if (on_event) on_event(event);
}

void FakeReplica::Complete() {
  EventCallback on_event;
  dserve::internal::v1::ExecutionEvent event;
  {
    absl::MutexLock lock(&mu_);
    on_event = on_event_;
    dserve::internal::v1::PlanDone* done = event.mutable_done();
    done->set_text_encode_ms(1);
    done->set_denoise_ms(2.0 * plan_->num_inference_steps());
    done->set_decode_ms(3);
    for (const auto& item : plan_->items()) {
      dserve::internal::v1::ItemResult* result = done->add_items();
      result->set_job_id(item.job_id());
      dserve::v1::Media* media = result->add_media();
      media->set_mime_type("image/png");
      media->set_data(std::string(1, static_cast<char>(item.seed() % 256)));
      media->set_width(plan_->width());
      media->set_height(plan_->height());
    }
  }
  if (on_event) on_event(event);
  {
    absl::MutexLock lock(&mu_);
    ++jobs_completed_;
  }
  EndWith(absl::OkStatus());
}

void FakeReplica::EndWith(absl::Status status,
                          dserve::v1::ReplicaState next_state) {
  DoneCallback on_done;
  {
    absl::MutexLock lock(&mu_);
    on_done = std::move(on_done_);
    on_done_ = nullptr;
    on_event_ = nullptr;
    state_ = next_state;
  }
  NotifyObserver();
  if (on_done) on_done(std::move(status));
}

void FakeReplica::NotifyObserver() {
  std::function<void()> observer;
  {
    absl::MutexLock lock(&mu_);
    observer = observer_;
  }
  if (observer) observer();
}

}  // namespace dserve::scheduler::testing
