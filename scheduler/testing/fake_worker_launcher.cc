#include "scheduler/testing/fake_worker_launcher.h"

#include <signal.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace dserve::scheduler::testing {

void FakeRank::WriteLine(const std::string& line) {
  absl::MutexLock lock(&mu_);
  lines_.push_back(line);
}

void FakeRank::Die(const std::string& how) {
  absl::MutexLock lock(&mu_);
  if (!how_.has_value()) how_ = how;
}

bool FakeRank::dead() const {
  absl::MutexLock lock(&mu_);
  return how_.has_value();
}

std::vector<int> FakeRank::signals() const {
  absl::MutexLock lock(&mu_);
  return signals_;
}

class FakeChildProcess final : public ChildProcess {
 public:
  explicit FakeChildProcess(std::shared_ptr<FakeRank> rank)
      : rank_(std::move(rank)) {}
  ~FakeChildProcess() override { Signal(SIGKILL); }

  int pid() const override { return rank_->pid(); }

  absl::StatusOr<std::optional<std::string>> TryReadLine() override {
    absl::MutexLock lock(&rank_->mu_);
    if (!rank_->lines_.empty()) {
      std::string line = std::move(rank_->lines_.front());
      rank_->lines_.pop_front();
      return std::optional<std::string>(std::move(line));
    }
    if (rank_->how_.has_value()) {
      return absl::UnavailableError(absl::StrCat(
          "process ", rank_->pid(), " closed its ready pipe and ",
          *rank_->how_));
    }
    return std::optional<std::string>();
  }

  void Signal(int signal) override {
    absl::MutexLock lock(&rank_->mu_);
    if (rank_->how_.has_value()) return;
    rank_->signals_.push_back(signal);
    if (signal == SIGKILL || signal == SIGTERM) {
      rank_->how_ = signal == SIGKILL ? "was killed by signal 9 (Killed)"
                                      : "exited with status 0";
    }
  }

  std::optional<std::string> Poll() override {
    absl::MutexLock lock(&rank_->mu_);
    return rank_->how_;
  }

  std::optional<std::string> WaitFor(absl::Duration) override { return Poll(); }

 private:
  std::shared_ptr<FakeRank> rank_;
};

class FakePlanStream final : public PlanStream {
 public:
  FakePlanStream(FakeLeader* leader, std::shared_ptr<FakeLeader::Plan> plan)
      : leader_(leader), plan_(std::move(plan)) {}
  void Cancel() override {
    absl::MutexLock lock(&leader_->mu_);
    plan_->cancelled = true;
  }

 private:
  FakeLeader* const leader_;
  std::shared_ptr<FakeLeader::Plan> plan_;
};

class FakeLink final : public LeaderLink {
 public:
  FakeLink(FakeLeader* leader, std::string address)
      : leader_(leader), address_(std::move(address)) {}

  std::string address() const override { return address_; }

  absl::StatusOr<dserve::internal::v1::ReplicaStatus> GetStatus(
      absl::Time, bool) override {
    absl::MutexLock lock(&leader_->mu_);
    ++leader_->get_status_calls_;
    if (!leader_->status_error_.ok()) return leader_->status_error_;
    dserve::internal::v1::ReplicaStatus status;
    for (size_t i = 0; i < leader_->models_.size(); ++i) {
      dserve::v1::ModelInfo* model = status.add_models();
      model->set_name(leader_->models_[i]);
      model->set_is_default(i == 0);
    }
    status.set_busy(leader_->busy_);
    status.add_ranks()->set_device("cpu");
    return status;
  }

  std::shared_ptr<PlanStream> Execute(
      const dserve::internal::v1::ExecutionPlan& plan, absl::Time deadline,
      EventCallback on_event, EndCallback on_end) override {
    auto p = std::make_shared<FakeLeader::Plan>();
    p->plan = plan;
    p->deadline = deadline;
    p->on_event = std::move(on_event);
    p->on_end = std::move(on_end);
    {
      absl::MutexLock lock(&leader_->mu_);
      leader_->plans_.push_back(p);
    }
    return std::make_shared<FakePlanStream>(leader_, p);
  }

 private:
  FakeLeader* const leader_;
  const std::string address_;
};

void FakeLeader::SetModels(std::vector<std::string> names) {
  absl::MutexLock lock(&mu_);
  models_ = std::move(names);
}

void FakeLeader::SetBusy(bool busy) {
  absl::MutexLock lock(&mu_);
  busy_ = busy;
}

void FakeLeader::SetStatusError(absl::Status status) {
  absl::MutexLock lock(&mu_);
  status_error_ = std::move(status);
}

int FakeLeader::get_status_calls() const {
  absl::MutexLock lock(&mu_);
  return get_status_calls_;
}

int FakeLeader::plans() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(plans_.size());
}

dserve::internal::v1::ExecutionPlan FakeLeader::plan(int i) const {
  absl::MutexLock lock(&mu_);
  return plans_.at(i)->plan;
}

bool FakeLeader::cancelled(int i) const {
  absl::MutexLock lock(&mu_);
  return plans_.at(i)->cancelled;
}

void FakeLeader::Emit(const dserve::internal::v1::ExecutionEvent& event) {
  std::shared_ptr<Plan> p;
  {
    absl::MutexLock lock(&mu_);
    p = plans_.back();
  }
  if (p->on_event) p->on_event(event);
}

void FakeLeader::End(absl::Status status) {
  std::shared_ptr<Plan> p;
  {
    absl::MutexLock lock(&mu_);
    p = plans_.back();
    if (p->ended) return;
    p->ended = true;
  }
  p->on_end(std::move(status));
}

FakeWorkerLauncher::FakeWorkerLauncher() = default;

absl::StatusOr<std::unique_ptr<ChildProcess>> FakeWorkerLauncher::Spawn(
    const std::string& /*binary*/, std::vector<std::string> args,
    bool /*with_ready_pipe*/, std::vector<std::string> /*extra_env*/) {
  absl::MutexLock lock(&mu_);
  if (!spawn_error_.ok()) return spawn_error_;
  auto rank = std::make_shared<FakeRank>(next_pid_++, std::move(args));
  ranks_.push_back(rank);
  return std::unique_ptr<ChildProcess>(new FakeChildProcess(rank));
}

std::unique_ptr<LeaderLink> FakeWorkerLauncher::Connect(
    const std::string& address, const std::string& /*secret*/) {
  {
    absl::MutexLock lock(&mu_);
    ++connects_;
  }
  return std::make_unique<FakeLink>(&leader_, address);
}

void FakeWorkerLauncher::FailSpawns(absl::Status status) {
  absl::MutexLock lock(&mu_);
  spawn_error_ = std::move(status);
}

std::vector<std::shared_ptr<FakeRank>> FakeWorkerLauncher::ranks() const {
  absl::MutexLock lock(&mu_);
  return ranks_;
}

int FakeWorkerLauncher::connects() const {
  absl::MutexLock lock(&mu_);
  return connects_;
}

}  // namespace dserve::scheduler::testing
