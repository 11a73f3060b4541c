#include "scheduler/replica.h"

#include <signal.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/replica_secret.h"
#include "common/rpc_status.h"
#include "common/status_macros.h"
#include "parallel/mesh_layout.h"
#include "spdlog/spdlog.h"

namespace dserve::scheduler {
namespace {

// The internal channel carries whole results (every frame of a video), so
// it has no receive limit.
std::shared_ptr<grpc::Channel> MakeLeaderChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

// Whether a failed Execute may hide a dead rank (the stream broke). A
// status the leader chose (a request it refused: INVALID_ARGUMENT,
// NOT_FOUND, FAILED_PRECONDITION, ...) says the replica is fine, so it is
// READY again at once instead of waiting for the supervisor's diagnosis.
bool MayBeACrash(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::DATA_LOSS:
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

// A fresh directory only this user can enter (mkdtemp makes it 0700), for
// the replica's FileStore: no other local user can read or write the store
// the ranks rendezvous through.
absl::StatusOr<std::string> MakePrivateDir(int replica) {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string path =
      (base / absl::StrCat("dserve-replica", replica, "-XXXXXX")).string();
  if (mkdtemp(path.data()) == nullptr) {
    return absl::InternalError(absl::StrCat(
        "replica ", replica, ": cannot create a private directory for its "
        "store under ", base.string(), ": ", std::strerror(errno)));
  }
  return path;
}

}  // namespace

LocalReplica::LocalReplica(LocalReplicaOptions options)
    : options_(std::move(options)), world_size_(static_cast<int>(
          parallel::WorldSize(parallel::ReplicaDegrees(options_.mesh)))) {
  absl::StatusOr<std::string> secret = common::NewReplicaSecret();
  if (secret.ok()) {
    secret_ = *std::move(secret);
  } else {
    secret_status_ = secret.status();
  }
}

void LocalReplica::AddSecret(grpc::ClientContext& context) const {
  context.AddMetadata(common::kReplicaSecretMetadata, secret_);
}

void LocalReplica::RemoveStoreDir() {
  if (store_dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(store_dir_, ec);
  if (ec) {
    spdlog::warn("[replica {}] cannot remove {}: {}", options_.index,
                 store_dir_, ec.message());
  }
  store_dir_.clear();
}

LocalReplica::~LocalReplica() { Shutdown(absl::ZeroDuration()); }

void LocalReplica::Start() {
  supervisor_ = std::thread([this] { Supervise(); });
}

void LocalReplica::Supervise() {
  bool ever_ready = false;
  int crashes_in_a_row = 0;
  while (true) {
    absl::Status started = StartProcesses();
    bool shutting_down;
    {
      absl::MutexLock lock(&mu_);
      shutting_down = shutdown_requested_;
    }
    absl::Time ready_at = absl::InfiniteFuture();
    if (!started.ok() && shutting_down) {
      // Not a failure: Shutdown came first.
      spdlog::info("[replica {}] start-up abandoned: the replica is shutting "
                   "down",
                   options_.index);
      break;
    } else if (!started.ok()) {
      spdlog::error("[replica {}] failed to start: {}", options_.index,
                    started.ToString());
      TearDown(started);
      if (!ever_ready && options_.on_first_start_failed) {
        options_.on_first_start_failed(absl::Status(
            started.code(),
            absl::StrCat("replica ", options_.index, ": ", started.message())));
      }
    } else {
      spdlog::info("[replica {}] ready: {} rank(s), mesh {}, leader {}",
                   options_.index, world_size_,
                   parallel::FormatMeshSpec(
                       parallel::ReplicaDegrees(options_.mesh)),
                   Info().leader_address());
      SetState(dserve::v1::REPLICA_STATE_READY);
      ever_ready = true;
      ready_at = absl::Now();
      if (!MonitorChildren()) break;
    }
    if (!options_.restart || !ever_ready) {
      // Stay FAILED until shutdown.
      SleepUnlessShutdown(absl::InfiniteDuration());
      break;
    }
    if (ready_at != absl::InfiniteFuture() &&
        absl::Now() - ready_at >= options_.restart_backoff_max) {
      crashes_in_a_row = 0;
    }
    ++crashes_in_a_row;
    absl::Duration backoff = options_.restart_backoff;
    for (int i = 1; i < crashes_in_a_row && backoff < options_.restart_backoff_max;
         ++i) {
      backoff *= 2;
    }
    backoff = std::min(backoff, options_.restart_backoff_max);
    spdlog::warn("[replica {}] restarting in {} (crash {} in a row)",
                 options_.index, absl::FormatDuration(backoff),
                 crashes_in_a_row);
    if (!SleepUnlessShutdown(backoff)) break;
    if (!PrepareRestart()) break;
  }
  absl::Duration grace;
  {
    absl::MutexLock lock(&mu_);
    grace = shutdown_grace_;
  }
  StopProcesses(grace);
}

bool LocalReplica::SleepUnlessShutdown(absl::Duration backoff) {
  absl::MutexLock lock(&mu_);
  auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return shutdown_requested_;
  };
  return !mu_.AwaitWithTimeout(absl::Condition(&stop), backoff);
}

bool LocalReplica::PrepareRestart() {
  {
    absl::MutexLock lock(&mu_);
    // The failed plan's thread reports the failure to the scheduler first;
    // it ends promptly (its call was cancelled by TearDown).
    auto plan_reported = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !plan_running_ || shutdown_requested_;
    };
    mu_.Await(absl::Condition(&plan_reported));
    if (shutdown_requested_) return false;
    pids_.clear();
    failure_.reset();
    stub_.reset();
    leader_address_.clear();
    ++restarts_;
    state_ = dserve::v1::REPLICA_STATE_STARTING;
  }
  // TearDown killed and reaped every rank.
  processes_.clear();
  spdlog::info("[replica {}] restarting", options_.index);
  NotifyObserver();
  return true;
}

absl::Status LocalReplica::StartProcesses() {
  const absl::Time give_up = absl::Now() + options_.startup_timeout;
  RETURN_IF_ERROR(secret_status_);
  // A fresh store per start: a restarted replica must not find the dead
  // ranks' keys.
  RemoveStoreDir();
  ASSIGN_OR_RETURN(store_dir_, MakePrivateDir(options_.index));
  const std::string store_file = store_dir_ + "/store";
  if (!options_.rank_devices.empty() &&
      static_cast<int>(options_.rank_devices.size()) != world_size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "replica ", options_.index, ": device num ",
        options_.rank_devices.size(), " and world size ", world_size_,
        " not match (rank_devices names one device per rank)"));
  }
  auto args_for = [this](int rank, const std::string& store) {
    std::vector<std::string> args = {
        absl::StrCat("--replica=", options_.index),
        absl::StrCat("--rank=", rank),
        absl::StrCat("--world=", world_size_),
        absl::StrCat("--store_file=", store),
        absl::StrCat("--device=", options_.rank_devices.empty()
                                      ? std::string("cpu")
                                      : options_.rank_devices[rank]),
        absl::StrCat("--dtype=", options_.dtype),
        absl::StrCat("--comm=", options_.comm),
        absl::StrCat("--mesh=", parallel::FormatMeshSpec(
                                    parallel::ReplicaDegrees(options_.mesh))),
        absl::StrCat("--model_dir=", options_.model_dir),
        absl::StrCat("--threads=", options_.threads),
        "--leader_address=127.0.0.1:0"};
    for (const common::ModelSpec& model : options_.models) {
      args.push_back(
          absl::StrCat("--model=", common::FormatWorkerModelFlag(model)));
    }
    if (!options_.default_model.empty()) {
      args.push_back(absl::StrCat("--default_model=", options_.default_model));
    }
    args.insert(args.end(), options_.extra_worker_args.begin(),
                options_.extra_worker_args.end());
    return args;
  };
  auto spawn = [&](int rank, const std::string& store) -> absl::Status {
    ASSIGN_OR_RETURN(
        std::unique_ptr<WorkerProcess> process,
        WorkerProcess::Spawn(
            options_.worker_binary, args_for(rank, store),
            /*with_ready_pipe=*/rank == 0,
            {absl::StrCat(common::kReplicaSecretEnv, "=", secret_)}));
    spdlog::info("[replica {}] rank {} started as pid {}", options_.index,
                 rank, process->pid());
    {
      absl::MutexLock lock(&mu_);
      pids_.push_back(process->pid());
    }
    processes_.push_back(std::move(process));
    return absl::OkStatus();
  };

  // Every rank opens the same FileStore, so all start at once.
  for (int rank = 0; rank < world_size_; ++rank) {
    RETURN_IF_ERROR(spawn(rank, store_file));
  }
  // Rank 0 says "leader" only after every rank rendezvoused and loaded the
  // model; a rank that dies meanwhile shows up as rank 0 failing or timing
  // out, so check the others too for a precise message. A "store <port>"
  // line (a worker hosting a TCPStore) is not needed here.
  absl::StatusOr<std::string> line = ReadReadyLine(give_up);
  while (line.ok() && absl::StartsWith(*line, "store ")) {
    line = ReadReadyLine(give_up);
  }
  if (!line.ok()) {
    for (size_t rank = 1; rank < processes_.size(); ++rank) {
      if (std::optional<std::string> how = processes_[rank]->Poll()) {
        return absl::UnavailableError(absl::StrCat(
            "rank ", rank, " (pid ", processes_[rank]->pid(), ") ", *how,
            " during start-up"));
      }
    }
    return absl::Status(line.status().code(),
                        absl::StrCat("rank 0: ", line.status().message()));
  }
  ASSIGN_OR_RETURN(const int leader_port, ParseReadyLine(*line, "leader"));
  return ConnectToLeader(leader_port, give_up);
}

absl::StatusOr<std::string> LocalReplica::ReadReadyLine(absl::Time give_up) {
  // Short slices, so a Shutdown during start-up does not wait for the whole
  // start-up timeout.
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_requested_) {
        return absl::CancelledError("shut down during start-up");
      }
    }
    const absl::Duration left = give_up - absl::Now();
    absl::StatusOr<std::string> line =
        processes_[0]->ReadLine(std::min(left, absl::Seconds(1)));
    if (line.ok() || line.status().code() != absl::StatusCode::kDeadlineExceeded) {
      return line;
    }
    if (left <= absl::Seconds(1)) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the replica was not ready within --startup_timeout_s=",
          absl::ToInt64Seconds(options_.startup_timeout)));
    }
  }
}

absl::Status LocalReplica::ConnectToLeader(int port, absl::Time give_up) {
  const std::string address = absl::StrCat("127.0.0.1:", port);
  auto stub = std::shared_ptr<dserve::internal::v1::ReplicaLeader::Stub>(
      dserve::internal::v1::ReplicaLeader::NewStub(MakeLeaderChannel(address)));
  grpc::ClientContext context;
  AddSecret(context);
  context.set_deadline(absl::ToChronoTime(
      std::max(give_up, absl::Now() + absl::Seconds(5))));
  context.set_wait_for_ready(true);
  dserve::internal::v1::ReplicaStatus status;
  grpc::Status rpc = stub->GetStatus(
      &context, dserve::internal::v1::GetStatusRequest(), &status);
  if (!rpc.ok()) {
    return absl::UnavailableError(
        absl::StrCat("GetStatus on the leader at ", address,
                     " failed: ", rpc.error_message()));
  }
  if (status.models_size() == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the leader at ", address, " reports no models"));
  }
  absl::MutexLock lock(&mu_);
  leader_address_ = address;
  stub_ = std::move(stub);
  models_.assign(status.models().begin(), status.models().end());
  rank_devices_.assign(status.ranks().begin(), status.ranks().end());
  return absl::OkStatus();
}

void LocalReplica::RefreshRankDevices() {
  std::shared_ptr<dserve::internal::v1::ReplicaLeader::Stub> stub;
  {
    absl::MutexLock lock(&mu_);
    stub = stub_;
  }
  if (stub == nullptr) return;
  grpc::ClientContext context;
  AddSecret(context);
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  dserve::internal::v1::ReplicaStatus status;
  if (!stub->GetStatus(&context, dserve::internal::v1::GetStatusRequest(),
                       &status)
           .ok()) {
    return;
  }
  absl::MutexLock lock(&mu_);
  rank_devices_.assign(status.ranks().begin(), status.ranks().end());
}

bool LocalReplica::MonitorChildren() {
  absl::Time next_refresh = absl::Now() + absl::Seconds(5);
  while (true) {
    if (absl::Now() >= next_refresh) {
      RefreshRankDevices();
      next_refresh = absl::Now() + absl::Seconds(5);
    }
    {
      absl::MutexLock lock(&mu_);
      if (!shutdown_requested_) {
        shutdown_cv_.WaitWithTimeout(&mu_, absl::Milliseconds(100));
      }
      if (shutdown_requested_) return false;
    }
    for (size_t rank = 0; rank < processes_.size(); ++rank) {
      std::optional<std::string> how = processes_[rank]->Poll();
      if (!how.has_value()) continue;
      TearDown(absl::UnavailableError(absl::StrCat(
          "replica ", options_.index, ": rank ", rank, " (pid ",
          processes_[rank]->pid(), ") ", *how)));
      return true;
    }
  }
}

void LocalReplica::TearDown(const absl::Status& failure) {
  bool already_failed;
  {
    absl::MutexLock lock(&mu_);
    already_failed = state_ == dserve::v1::REPLICA_STATE_FAILED;
    if (!already_failed) {
      failure_ = failure;
      state_ = dserve::v1::REPLICA_STATE_FAILED;
      // The running Execute ends with `failure` (see ExecutePlan).
      if (run_context_ != nullptr) run_context_->TryCancel();
    }
  }
  if (already_failed) return;
  spdlog::error("[replica {}] FAILED: {}", options_.index,
                std::string(failure.message()));
  // A Gloo or NCCL group with a dead member cannot be repaired: stop every
  // rank so none is left blocked in a collective.
  for (auto& process : processes_) process->Signal(SIGKILL);
  for (auto& process : processes_) process->WaitFor(absl::Seconds(5));
  NotifyObserver();
}

void LocalReplica::StopProcesses(absl::Duration grace) {
  {
    // Close our connection to the leader first: a gRPC server's graceful
    // shutdown waits for connected clients to go away, which held every
    // worker's exit up by its shutdown deadline (2 s).
    absl::MutexLock lock(&mu_);
    stub_.reset();
  }
  for (auto& process : processes_) process->Signal(SIGTERM);
  const absl::Time give_up = absl::Now() + grace;
  for (size_t rank = 0; rank < processes_.size(); ++rank) {
    std::optional<std::string> how =
        processes_[rank]->WaitFor(std::max(absl::ZeroDuration(),
                                           give_up - absl::Now()));
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

dserve::v1::ReplicaInfo LocalReplica::Info() const {
  absl::MutexLock lock(&mu_);
  dserve::v1::ReplicaInfo info;
  info.set_index(options_.index);
  info.set_state(state_);
  *info.mutable_mesh() = parallel::MeshLayoutFromDegrees(options_.mesh);
  info.set_world_size(world_size_);
  for (int pid : pids_) info.add_pids(pid);
  info.set_leader_address(leader_address_);
  info.set_current_job_id(current_job_id_);
  info.set_jobs_completed(jobs_completed_);
  info.set_restarts(restarts_);
  for (const dserve::v1::RankDevice& d : rank_devices_) *info.add_ranks() = d;
  return info;
}

std::vector<dserve::v1::ModelInfo> LocalReplica::Models() const {
  absl::MutexLock lock(&mu_);
  return models_;
}

absl::Status LocalReplica::Run(dserve::internal::v1::ExecutionPlan plan,
                               EventCallback on_event, DoneCallback on_done) {
  std::thread previous;
  {
    absl::MutexLock lock(&mu_);
    if (state_ != dserve::v1::REPLICA_STATE_READY) {
      return absl::FailedPreconditionError(absl::StrCat(
          "replica ", options_.index, " is ",
          dserve::v1::ReplicaState_Name(state_), ", not READY"));
    }
    state_ = dserve::v1::REPLICA_STATE_BUSY;
    plan_running_ = true;
    cancel_requested_ = false;
    current_job_id_ = plan.items_size() > 0 ? plan.items(0).job_id() : "";
    previous = std::move(run_thread_);
  }
  // The previous plan's thread already delivered on_done; it may still be
  // unwinding.
  if (previous.joinable()) previous.join();
  {
    absl::MutexLock lock(&mu_);
    run_thread_ = std::thread(
        [this, plan = std::move(plan), on_event = std::move(on_event),
         on_done = std::move(on_done)]() mutable {
          ExecutePlan(std::move(plan), std::move(on_event), std::move(on_done));
        });
  }
  NotifyObserver();
  return absl::OkStatus();
}

void LocalReplica::ExecutePlan(dserve::internal::v1::ExecutionPlan plan,
                               EventCallback on_event, DoneCallback on_done) {
  const std::string job_id =
      plan.items_size() > 0 ? plan.items(0).job_id() : "-";
  grpc::ClientContext context;
  AddSecret(context);
  // The plan's deadline stops it in-band at a step boundary (RankLoop);
  // the call's own deadline, a little later, is the backstop for a leader
  // that never gets there.
  if (plan.deadline_unix_ms() > 0) {
    context.set_deadline(absl::ToChronoTime(
        absl::FromUnixMillis(plan.deadline_unix_ms()) +
        options_.deadline_grace));
  }
  std::shared_ptr<dserve::internal::v1::ReplicaLeader::Stub> stub;
  {
    absl::MutexLock lock(&mu_);
    stub = stub_;
    run_context_ = &context;
    if (cancel_requested_ || failure_.has_value()) context.TryCancel();
  }
  if (stub == nullptr) {
    // Shut down (or torn down) between Run and this thread starting.
    absl::Status status = absl::UnavailableError(absl::StrCat(
        "replica ", options_.index, " stopped before the plan could start"));
    {
      absl::MutexLock lock(&mu_);
      run_context_ = nullptr;
      current_job_id_.clear();
      if (failure_.has_value()) status = *failure_;
      plan_running_ = false;
    }
    NotifyObserver();
    on_done(std::move(status));
    return;
  }
  spdlog::debug("[replica {}] [job {}] Execute: {}x{}x{}, {} steps",
                options_.index, job_id, plan.width(), plan.height(),
                plan.num_frames(), plan.num_inference_steps());
  std::unique_ptr<grpc::ClientReader<dserve::internal::v1::ExecutionEvent>>
      reader = stub->Execute(&context, plan);
  dserve::internal::v1::ExecutionEvent event;
  while (reader->Read(&event)) on_event(event);
  const grpc::Status rpc = reader->Finish();

  absl::Status status =
      common::FromGrpcStatus(rpc, absl::StrCat("replica ", options_.index));
  bool cancelled_by_us;
  {
    absl::MutexLock lock(&mu_);
    cancelled_by_us = cancel_requested_ && !failure_.has_value() &&
                      !shutdown_requested_;
  }
  // A plan past its deadline (stopped by the leader, or the call's
  // deadline fired first) may still be inside its last step: wait for it
  // like for a cancel.
  if (!rpc.ok() && (cancelled_by_us || rpc.error_code() ==
                                           grpc::StatusCode::DEADLINE_EXCEEDED)) {
    // TryCancel ends the client call at once, but the ranks only stop at
    // their next step boundary. Stay BUSY until the leader says the plan
    // is over, so the next job starts on a free replica and the cancel
    // latency the caller sees is the real one.
    WaitUntilLeaderIdle(*stub, job_id);
  }
  {
    absl::MutexLock lock(&mu_);
    if (!rpc.ok() && !cancel_requested_ && MayBeACrash(rpc.error_code())) {
      // A broken stream we did not ask for usually means a rank died. The
      // supervisor polls the children every 100 ms; give it a moment so
      // the job's status names the rank and how it died rather than
      // "Socket closed".
      auto diagnosed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return failure_.has_value() || shutdown_requested_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&diagnosed), absl::Seconds(2));
    }
    run_context_ = nullptr;
    current_job_id_.clear();
    if (failure_.has_value()) {
      // The RPC only saw a cancelled or broken stream; the supervisor knows
      // which rank died and how.
      status = *failure_;
    } else if (state_ == dserve::v1::REPLICA_STATE_BUSY) {
      state_ = dserve::v1::REPLICA_STATE_READY;
    }
    if (status.ok()) ++jobs_completed_;
    plan_running_ = false;
  }
  spdlog::debug("[replica {}] [job {}] Execute ended: {}", options_.index,
                job_id, status.ToString());
  NotifyObserver();
  on_done(std::move(status));
}

void LocalReplica::WaitUntilLeaderIdle(
    dserve::internal::v1::ReplicaLeader::Stub& stub, const std::string& job_id) {
  const absl::Time start = absl::Now();
  const absl::Time give_up = start + options_.cancel_stop_timeout;
  while (absl::Now() < give_up) {
    {
      absl::MutexLock lock(&mu_);
      if (failure_.has_value() || shutdown_requested_) return;
    }
    grpc::ClientContext context;
    AddSecret(context);
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    dserve::internal::v1::ReplicaStatus status;
    grpc::Status rpc = stub.GetStatus(
        &context, dserve::internal::v1::GetStatusRequest(), &status);
    if (rpc.ok() && !status.busy()) {
      spdlog::debug("[replica {}] [job {}] cancelled plan stopped after {}",
                    options_.index, job_id,
                    absl::FormatDuration(absl::Now() - start));
      return;
    }
    // A failed GetStatus usually means a dying rank; the supervisor will
    // notice it, and the failure_ check above ends the wait.
    absl::SleepFor(absl::Milliseconds(10));
  }
  spdlog::warn("[replica {}] [job {}] the leader still runs the cancelled "
               "plan after {}; taking new work anyway (it queues behind it)",
               options_.index, job_id,
               absl::FormatDuration(options_.cancel_stop_timeout));
}

void LocalReplica::Cancel() {
  absl::MutexLock lock(&mu_);
  cancel_requested_ = true;
  if (run_context_ != nullptr) run_context_->TryCancel();
}

void LocalReplica::SetStateObserver(std::function<void()> observer) {
  absl::MutexLock lock(&mu_);
  observer_ = std::move(observer);
}

void LocalReplica::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  std::thread run_thread;
  {
    absl::MutexLock lock(&mu_);
    shutdown_requested_ = true;
    shutdown_grace_ = grace;
    if (state_ != dserve::v1::REPLICA_STATE_FAILED) {
      state_ = dserve::v1::REPLICA_STATE_DRAINING;
    }
    if (run_context_ != nullptr) run_context_->TryCancel();
    shutdown_cv_.SignalAll();
  }
  if (supervisor_.joinable()) supervisor_.join();
  {
    absl::MutexLock lock(&mu_);
    run_thread = std::move(run_thread_);
  }
  if (run_thread.joinable()) run_thread.join();
}

void LocalReplica::SetState(dserve::v1::ReplicaState state) {
  {
    absl::MutexLock lock(&mu_);
    // Shutdown or a failure during start-up wins over a late READY.
    if (state_ == dserve::v1::REPLICA_STATE_DRAINING ||
        state_ == dserve::v1::REPLICA_STATE_FAILED) {
      return;
    }
    state_ = state;
  }
  NotifyObserver();
}

void LocalReplica::NotifyObserver() {
  std::function<void()> observer;
  {
    absl::MutexLock lock(&mu_);
    observer = observer_;
  }
  if (observer) observer();
}

}  // namespace dserve::scheduler
