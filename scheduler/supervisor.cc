#include "scheduler/supervisor.h"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/replica_secret.h"
#include "common/status_macros.h"
#include "scheduler/store_dir.h"
#include "spdlog/spdlog.h"

namespace dserve::scheduler {

using ::dserve::v1::ReplicaState;

struct Supervisor::PlanSlot {
  dserve::internal::v1::ExecutionPlan plan;
  ReplicaHandle::EventCallback on_event;
  ReplicaHandle::DoneCallback on_done;
  std::string job_id;
  // Guarded by Supervisor::mu_.
  std::shared_ptr<PlanStream> stream;
  std::optional<absl::Status> ended;
  // Loop-thread only.
  bool started = false;
  absl::Time stop_wait_until = absl::InfiniteFuture();
  absl::Time diagnose_until = absl::InfiniteFuture();
};

namespace {

// Whether a failed Execute may hide a dead rank (the stream broke). A
// status the leader chose (a request it refused: INVALID_ARGUMENT,
// NOT_FOUND, FAILED_PRECONDITION, ...) says the replica is fine, so it is
// READY again at once instead of waiting for the crash diagnosis.
bool MayBeACrash(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDataLoss:
      return true;
    default:
      return false;
  }
}

// Parses "<word> <port>" from a ready line.
// "error <message>" instead: the worker refused to start (a model that
// does not load, a mesh that does not fit it) and says why.
absl::StatusOr<int> ParseReadyLine(const std::string& line,
                                   const std::string& word) {
  constexpr absl::string_view kError = "error ";
  if (absl::string_view(line).substr(0, kError.size()) == kError) {
    return absl::FailedPreconditionError(
        absl::StrCat("rank 0 refused to start: ", line.substr(kError.size())));
  }
  std::vector<std::string> parts = absl::StrSplit(line, ' ');
  int port = 0;
  if (parts.size() != 2 || parts[0] != word ||
      !absl::SimpleAtoi(parts[1], &port) || port <= 0 || port > 65535) {
    return absl::InternalError(absl::StrCat(
        "expected \"", word, " <port>\" on the ready pipe, got \"", line, "\""));
  }
  return port;
}

}  // namespace

Supervisor::Supervisor(SupervisorOptions options, WorkerLauncher* launcher,
                       const Clock* clock)
    : options_(std::move(options)), launcher_(launcher), clock_(clock) {}

Supervisor::~Supervisor() {
  // The ChildProcess destructors kill and reap what still runs.
  processes_.clear();
  RemoveStoreDir();
}

void Supervisor::SetWake(std::function<void()> wake) {
  absl::MutexLock lock(&mu_);
  wake_ = std::move(wake);
}

void Supervisor::SetStateObserver(std::function<void()> observer) {
  absl::MutexLock lock(&mu_);
  observer_ = std::move(observer);
}

void Supervisor::Wake() {
  std::function<void()> wake;
  {
    absl::MutexLock lock(&mu_);
    wake = wake_;
  }
  if (wake) wake();
}

void Supervisor::Notify() {
  std::function<void()> observer;
  {
    absl::MutexLock lock(&mu_);
    observer = observer_;
  }
  if (observer) observer();
}

bool Supervisor::stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

ReplicaState Supervisor::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

std::optional<absl::Status> Supervisor::failure() const {
  absl::MutexLock lock(&mu_);
  return failure_;
}

bool Supervisor::restart_pending() const {
  absl::MutexLock lock(&mu_);
  return restart_pending_;
}

void Supervisor::FillInfo(dserve::v1::ReplicaInfo& info) const {
  absl::MutexLock lock(&mu_);
  info.set_state(state_);
  for (int pid : pids_) info.add_pids(pid);
  info.set_leader_address(leader_address_);
  info.set_current_job_id(current_job_id_);
  info.set_jobs_completed(jobs_completed_);
  info.set_restarts(restarts_);
  for (const dserve::v1::RankDevice& d : rank_devices_) *info.add_ranks() = d;
}

std::vector<dserve::v1::ModelInfo> Supervisor::Models() const {
  absl::MutexLock lock(&mu_);
  return models_;
}

absl::Status Supervisor::Run(dserve::internal::v1::ExecutionPlan plan,
                             ReplicaHandle::EventCallback on_event,
                             ReplicaHandle::DoneCallback on_done) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != dserve::v1::REPLICA_STATE_READY) {
      return absl::FailedPreconditionError(
          absl::StrCat("replica ", options_.index, " is ",
                       dserve::v1::ReplicaState_Name(state_), ", not READY"));
    }
    state_ = dserve::v1::REPLICA_STATE_BUSY;
    cancel_requested_ = false;
    auto slot = std::make_shared<PlanSlot>();
    slot->job_id = plan.items_size() > 0 ? plan.items(0).job_id() : "";
    slot->plan = std::move(plan);
    slot->on_event = std::move(on_event);
    slot->on_done = std::move(on_done);
    current_job_id_ = slot->job_id;
    plan_ = std::move(slot);
  }
  Notify();
  Wake();
  return absl::OkStatus();
}

void Supervisor::Cancel() {
  std::shared_ptr<PlanStream> stream;
  {
    absl::MutexLock lock(&mu_);
    cancel_requested_ = true;
    if (plan_ != nullptr) stream = plan_->stream;
  }
  if (stream != nullptr) stream->Cancel();
  Wake();
}

void Supervisor::RequestShutdown(absl::Duration grace) {
  std::shared_ptr<PlanStream> stream;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_requested_) return;
    shutdown_requested_ = true;
    shutdown_grace_ = grace;
    if (state_ != dserve::v1::REPLICA_STATE_FAILED) {
      state_ = dserve::v1::REPLICA_STATE_DRAINING;
    }
    if (plan_ != nullptr) stream = plan_->stream;
  }
  if (stream != nullptr) stream->Cancel();
  Wake();
}

absl::Time Supervisor::RunOnce(absl::Time now) {
  const ReplicaState before = state();
  absl::Time wake = absl::InfiniteFuture();
  bool shutdown;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return absl::InfiniteFuture();
    shutdown = shutdown_requested_;
  }
  if (shutdown) {
    if (!FinishForShutdown(now)) return now + options_.child_poll;
    return absl::InfiniteFuture();
  }
  StartIfDue(now);
  ReapChildren(now);
  ReadReadyLines(now);
  CheckStartDeadline(now, wake);
  DrivePlan(now, wake);
  CheckHealth(now, wake);
  RestartIfDue(now, wake);
  const ReplicaState after = state();
  if (after != before) Notify();
  if (!processes_.empty() && after != dserve::v1::REPLICA_STATE_FAILED) {
    wake = std::min(wake, now + options_.child_poll);
  }
  return wake;
}

bool Supervisor::FinishForShutdown(absl::Time now) {
  std::shared_ptr<PlanSlot> plan;
  absl::Duration grace;
  {
    absl::MutexLock lock(&mu_);
    plan = plan_;
    grace = shutdown_grace_;
  }
  if (plan != nullptr) {
    std::optional<absl::Status> ended;
    {
      absl::MutexLock lock(&mu_);
      ended = plan->ended;
    }
    if (!plan->started) {
      Report(plan, absl::UnavailableError(
                       absl::StrCat("replica ", options_.index,
                                    " stopped before the plan could start")));
    } else if (!ended.has_value()) {
      return false;  // Cancelled by RequestShutdown; its end wakes us.
    } else {
      Report(plan, *ended);
    }
  }
  if (starting_) {
    spdlog::info("[replica {}] start-up abandoned: the replica is shutting "
                 "down",
                 options_.index);
    starting_ = false;
  }
  StopProcesses(grace);
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  (void)now;
  Notify();
  return true;
}

void Supervisor::StartIfDue(absl::Time now) {
  if (starting_ || !processes_.empty() || now < start_at_) return;
  if (state() != dserve::v1::REPLICA_STATE_STARTING) return;
  start_at_ = absl::InfiniteFuture();
  starting_ = true;
  start_deadline_ = now + options_.startup_timeout;
  if (absl::Status s = SpawnRanks(); !s.ok()) Fail(s, now);
}

absl::Status Supervisor::SpawnRanks() {
  RETURN_IF_ERROR(options_.start_precondition);
  // A fresh store per start: a restarted replica must not find the dead
  // ranks' keys.
  RemoveStoreDir();
  ASSIGN_OR_RETURN(store_dir_,
                   MakeReplicaStoreDir(DefaultStoreBase(), options_.index));
  const std::string store_file = store_dir_ + "/store";
  // Every rank opens the same FileStore, so all start at once.
  for (int rank = 0; rank < options_.world_size; ++rank) {
    ASSIGN_OR_RETURN(
        std::unique_ptr<ChildProcess> process,
        launcher_->Spawn(
            options_.worker_binary, options_.rank_args(rank, store_file),
            /*with_ready_pipe=*/rank == 0,
            {absl::StrCat(common::kReplicaSecretEnv, "=", options_.secret)}));
    spdlog::info("[replica {}] rank {} started as pid {}", options_.index,
                 rank, process->pid());
    {
      absl::MutexLock lock(&mu_);
      pids_.push_back(process->pid());
    }
    processes_.push_back(std::move(process));
  }
  return absl::OkStatus();
}

void Supervisor::ReapChildren(absl::Time now) {
  if (state() == dserve::v1::REPLICA_STATE_FAILED) return;
  int dead = -1;
  std::string how;
  for (size_t rank = 0; rank < processes_.size(); ++rank) {
    if (std::optional<std::string> ended = processes_[rank]->Poll()) {
      // During start-up a follower's death explains rank 0's better.
      if (dead < 0 || (starting_ && dead == 0)) {
        dead = static_cast<int>(rank);
        how = *ended;
      }
    }
  }
  if (dead < 0) return;
  if (starting_) {
    // A worker that refuses to start says why on its pipe, then exits:
    // the reason beats "exited with status 1".
    if (dead == 0) {
      ReadReadyLines(now);
      if (!starting_) {
        if (state() != dserve::v1::REPLICA_STATE_FAILED) {
          // It said "leader" and died: a crash right after start-up.
          Fail(absl::UnavailableError(absl::StrCat(
                   "replica ", options_.index, ": rank 0 (pid ",
                   processes_[0]->pid(), ") ", how)),
               now);
        }
        return;
      }
      Fail(absl::UnavailableError(absl::StrCat(
               "rank 0: process ", processes_[0]->pid(), " ", how,
               " before it was ready")),
           now);
      return;
    }
    Fail(absl::UnavailableError(absl::StrCat(
             "rank ", dead, " (pid ", processes_[dead]->pid(), ") ", how,
             " during start-up")),
         now);
    return;
  }
  Fail(absl::UnavailableError(absl::StrCat("replica ", options_.index,
                                           ": rank ", dead, " (pid ",
                                           processes_[dead]->pid(), ") ", how)),
       now);
}

void Supervisor::ReadReadyLines(absl::Time now) {
  // Rank 0 says "leader" only after every rank rendezvoused and loaded the
  // model. A "store <port>" line (a worker hosting a TCPStore) is not
  // needed here.
  while (starting_ && !processes_.empty()) {
    absl::StatusOr<std::optional<std::string>> line =
        processes_[0]->TryReadLine();
    if (!line.ok()) {
      // The pipe closed: ReapChildren names the rank and how it ended once
      // it is reaped; a pipe closed by a live rank 0 fails here.
      if (processes_[0]->Poll().has_value()) return;
      Fail(absl::Status(line.status().code(),
                        absl::StrCat("rank 0: ", line.status().message())),
           now);
      return;
    }
    if (!line->has_value()) return;
    if (absl::StartsWith(**line, "store ")) continue;
    absl::StatusOr<int> port = ParseReadyLine(**line, "leader");
    absl::Status connected =
        port.ok() ? ConnectToLeader(*port, now) : port.status();
    if (!connected.ok()) {
      Fail(connected, now);
      return;
    }
    starting_ = false;
    ready_at_ = now;
    history_.ever_ready = true;
    next_health_ = now + options_.health_interval;
    std::string address;
    {
      absl::MutexLock lock(&mu_);
      if (state_ == dserve::v1::REPLICA_STATE_STARTING) {
        state_ = dserve::v1::REPLICA_STATE_READY;
      }
      address = leader_address_;
    }
    spdlog::info("[replica {}] ready: {} rank(s), mesh {}, leader {}",
                 options_.index, options_.world_size, options_.mesh_spec,
                 address);
  }
}

absl::Status Supervisor::ConnectToLeader(int port, absl::Time now) {
  const std::string address = absl::StrCat("127.0.0.1:", port);
  std::unique_ptr<LeaderLink> link =
      launcher_->Connect(address, options_.secret);
  absl::StatusOr<dserve::internal::v1::ReplicaStatus> status = link->GetStatus(
      std::max(start_deadline_, now + absl::Seconds(5)),
      /*wait_for_ready=*/true);
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("GetStatus on the leader at ", address,
                     " failed: ", status.status().message()));
  }
  if (status->models_size() == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the leader at ", address, " reports no models"));
  }
  link_ = std::move(link);
  absl::MutexLock lock(&mu_);
  leader_address_ = address;
  models_.assign(status->models().begin(), status->models().end());
  rank_devices_.assign(status->ranks().begin(), status->ranks().end());
  return absl::OkStatus();
}

void Supervisor::CheckStartDeadline(absl::Time now, absl::Time& wake) {
  if (!starting_) return;
  if (now < start_deadline_) {
    wake = std::min(wake, start_deadline_);
    return;
  }
  Fail(absl::DeadlineExceededError(absl::StrCat(
           "rank 0: the replica was not ready within --startup_timeout_s=",
           absl::ToInt64Seconds(options_.startup_timeout))),
       now);
}

void Supervisor::DrivePlan(absl::Time now, absl::Time& wake) {
  std::shared_ptr<PlanSlot> plan;
  bool cancel_requested;
  std::optional<absl::Status> failure;
  {
    absl::MutexLock lock(&mu_);
    plan = plan_;
    cancel_requested = cancel_requested_;
    failure = failure_;
  }
  if (plan == nullptr) return;
  if (!plan->started) {
    plan->started = true;
    if (failure.has_value() || link_ == nullptr) {
      Report(plan, failure.value_or(absl::UnavailableError(absl::StrCat(
                       "replica ", options_.index,
                       " stopped before the plan could start"))));
      return;
    }
    spdlog::debug("[replica {}] [job {}] Execute: {}x{}x{}, {} steps",
                  options_.index, plan->job_id, plan->plan.width(),
                  plan->plan.height(), plan->plan.num_frames(),
                  plan->plan.num_inference_steps());
    // The plan's deadline stops it in-band at a step boundary (RankLoop);
    // the call's own deadline, a little later, is the backstop for a
    // leader that never gets there.
    const absl::Time deadline =
        plan->plan.deadline_unix_ms() > 0
            ? absl::FromUnixMillis(plan->plan.deadline_unix_ms()) +
                  options_.deadline_grace
            : absl::InfiniteFuture();
    std::weak_ptr<PlanSlot> weak = plan;
    std::shared_ptr<PlanStream> stream = link_->Execute(
        plan->plan, deadline, plan->on_event, [this, weak](absl::Status s) {
          // Wakes under the lock: once RunOnce can see the end, this
          // callback touches nothing of the supervisor any more (its owner
          // may destroy it right after reporting the plan).
          absl::MutexLock lock(&mu_);
          if (std::shared_ptr<PlanSlot> p = weak.lock()) p->ended = std::move(s);
          if (wake_) wake_();
        });
    {
      absl::MutexLock lock(&mu_);
      plan->stream = stream;
      cancel_requested = cancel_requested_ || shutdown_requested_;
    }
    if (cancel_requested) stream->Cancel();
    return;
  }
  std::optional<absl::Status> ended;
  {
    absl::MutexLock lock(&mu_);
    ended = plan->ended;
  }
  if (!ended.has_value()) return;  // Its end wakes the loop.
  const absl::Status& status = *ended;
  if (failure.has_value()) {
    // The RPC only saw a cancelled or broken stream; the reaping knows
    // which rank died and how.
    Report(plan, *failure);
    return;
  }
  if (!status.ok() && (cancel_requested || absl::IsDeadlineExceeded(status))) {
    // The call ended at once, but the ranks stop only at their next step
    // boundary. Stay BUSY until the leader says the plan is over, so the
    // next job starts on a free replica and the cancel latency the caller
    // sees is the real one.
    if (plan->stop_wait_until == absl::InfiniteFuture()) {
      plan->stop_wait_until = now + options_.cancel_stop_timeout;
    }
    if (now < plan->stop_wait_until) {
      absl::StatusOr<dserve::internal::v1::ReplicaStatus> leader =
          link_->GetStatus(now + absl::Seconds(1), /*wait_for_ready=*/false);
      if (!leader.ok() || leader->busy()) {
        // A failed GetStatus usually means a dying rank, which the reaping
        // turns into the failure.
        wake = std::min(wake, now + options_.stop_poll);
        return;
      }
    } else {
      spdlog::warn("[replica {}] [job {}] the leader still runs the cancelled "
                   "plan after {}; taking new work anyway (it queues behind "
                   "it)",
                   options_.index, plan->job_id,
                   absl::FormatDuration(options_.cancel_stop_timeout));
    }
    Report(plan, status);
    return;
  }
  if (!status.ok() && !cancel_requested && MayBeACrash(status.code())) {
    // A broken stream we did not ask for usually means a rank died: give
    // the reaping a moment, so the job's status names the rank and how it
    // died rather than "Socket closed".
    if (plan->diagnose_until == absl::InfiniteFuture()) {
      plan->diagnose_until = now + options_.crash_diagnosis;
    }
    if (now < plan->diagnose_until) {
      wake = std::min(wake, plan->diagnose_until);
      return;
    }
  }
  Report(plan, status);
}

void Supervisor::Report(const std::shared_ptr<PlanSlot>& plan,
                        absl::Status status) {
  {
    absl::MutexLock lock(&mu_);
    if (plan_ == plan) plan_.reset();
    current_job_id_.clear();
    if (failure_.has_value()) {
      status = *failure_;
    } else if (state_ == dserve::v1::REPLICA_STATE_BUSY) {
      state_ = dserve::v1::REPLICA_STATE_READY;
    }
    if (status.ok()) ++jobs_completed_;
  }
  spdlog::debug("[replica {}] [job {}] Execute ended: {}", options_.index,
                plan->job_id, status.ToString());
  Notify();
  if (plan->on_done) plan->on_done(std::move(status));
}

void Supervisor::CheckHealth(absl::Time now, absl::Time& wake) {
  if (link_ == nullptr || starting_) return;
  const ReplicaState s = state();
  if (s != dserve::v1::REPLICA_STATE_READY &&
      s != dserve::v1::REPLICA_STATE_BUSY) {
    return;
  }
  if (now >= next_health_) {
    // GPU memory changes as plans run. A failure is ignored: the reaping
    // notices a dead rank on its own.
    absl::StatusOr<dserve::internal::v1::ReplicaStatus> status =
        link_->GetStatus(now + absl::Seconds(1), /*wait_for_ready=*/false);
    if (status.ok()) {
      absl::MutexLock lock(&mu_);
      rank_devices_.assign(status->ranks().begin(), status->ranks().end());
    }
    next_health_ = now + options_.health_interval;
  }
  wake = std::min(wake, next_health_);
}

void Supervisor::Fail(const absl::Status& failure, absl::Time now) {
  // Decided before the state changes, so whoever sees FAILED (the scheduler
  // routing the failed plan) also sees whether a restart follows.
  const RestartVerdict verdict =
      DecideRestart(options_.restart, history_, ready_at_, now);
  std::shared_ptr<PlanStream> stream;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == dserve::v1::REPLICA_STATE_FAILED) return;
    failure_ = failure;
    state_ = dserve::v1::REPLICA_STATE_FAILED;
    restart_pending_ = verdict.restart;
    // The running Execute ends with `failure` (see DrivePlan).
    if (plan_ != nullptr) stream = plan_->stream;
  }
  const bool was_starting = starting_;
  starting_ = false;
  if (was_starting) {
    spdlog::error("[replica {}] failed to start: {}", options_.index,
                  failure.ToString());
  }
  spdlog::error("[replica {}] FAILED: {}", options_.index,
                std::string(failure.message()));
  if (stream != nullptr) stream->Cancel();
  // A Gloo or NCCL group with a dead member cannot be repaired: stop every
  // rank so none is left blocked in a collective.
  for (auto& process : processes_) process->Signal(SIGKILL);
  for (auto& process : processes_) process->WaitFor(absl::Seconds(5));

  const bool first_start = !history_.ever_ready;
  history_ = verdict.history;
  ready_at_ = absl::InfiniteFuture();
  if (verdict.restart) {
    start_at_ = verdict.restart_at;
    spdlog::warn("[replica {}] restarting in {} (crash {} in a row)",
                 options_.index, absl::FormatDuration(verdict.backoff),
                 verdict.history.crashes_in_a_row);
  } else {
    start_at_ = absl::InfiniteFuture();
    spdlog::error("[replica {}] stays FAILED: {}", options_.index,
                  verdict.why_not);
    if (history_.ever_ready && options_.restart.restart) {
      // A restart storm: the failure says why nothing restarts it.
      absl::MutexLock lock(&mu_);
      failure_ = absl::Status(
          failure.code(), absl::StrCat(failure.message(), "; not restarted: ",
                                       verdict.why_not));
    }
  }
  Notify();
  if (first_start && options_.on_first_start_failed) {
    options_.on_first_start_failed(absl::Status(
        failure.code(),
        absl::StrCat("replica ", options_.index, ": ", failure.message())));
  }
}

void Supervisor::RestartIfDue(absl::Time now, absl::Time& wake) {
  if (start_at_ == absl::InfiniteFuture()) return;
  {
    absl::MutexLock lock(&mu_);
    if (state_ != dserve::v1::REPLICA_STATE_FAILED) return;
    // The failed plan is reported to the scheduler first.
    if (plan_ != nullptr) return;
  }
  if (now < start_at_) {
    wake = std::min(wake, start_at_);
    return;
  }
  // Fail killed and reaped every rank.
  processes_.clear();
  link_.reset();
  {
    absl::MutexLock lock(&mu_);
    pids_.clear();
    failure_.reset();
    leader_address_.clear();
    ++restarts_;
    restart_pending_ = false;
    state_ = dserve::v1::REPLICA_STATE_STARTING;
  }
  spdlog::info("[replica {}] restarting", options_.index);
  // Start at the next step, after the state edge is surfaced.
  wake = now;
}

void Supervisor::StopProcesses(absl::Duration grace) {
  // Close our connection to the leader first: a gRPC server's graceful
  // shutdown waits for connected clients to go away, which held every
  // worker's exit up by its shutdown deadline (2 s).
  link_.reset();
  for (auto& process : processes_) process->Signal(SIGTERM);
  const absl::Time give_up = clock_->Now() + grace;
  for (size_t rank = 0; rank < processes_.size(); ++rank) {
    std::optional<std::string> how = processes_[rank]->WaitFor(
        std::max(absl::ZeroDuration(), give_up - clock_->Now()));
    if (!how.has_value()) {
      spdlog::warn("[replica {}] rank {} did not exit within {}; killing it",
                   options_.index, rank, absl::FormatDuration(grace));
      processes_[rank]->Signal(SIGKILL);
      how = processes_[rank]->WaitFor(absl::Seconds(5));
    }
    spdlog::info("[replica {}] rank {} (pid {}) {}", options_.index, rank,
                 processes_[rank]->pid(), how.value_or("did not exit"));
  }
  RemoveStoreDir();
}

void Supervisor::RemoveStoreDir() {
  if (store_dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(store_dir_, ec);
  if (ec) {
    spdlog::warn("[replica {}] cannot remove {}: {}", options_.index,
                 store_dir_, ec.message());
  }
  store_dir_.clear();
}

}  // namespace dserve::scheduler
