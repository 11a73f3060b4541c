#include "scheduler/replica.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/replica_secret.h"
#include "parallel/mesh_layout.h"
#include "spdlog/spdlog.h"

namespace dserve::scheduler {

LocalReplica::LocalReplica(LocalReplicaOptions options)
    : options_(std::move(options)), world_size_(static_cast<int>(
          parallel::WorldSize(parallel::ReplicaDegrees(options_.mesh)))),
      launcher_(options_.index) {
  SupervisorOptions s;
  s.index = options_.index;
  s.world_size = world_size_;
  s.mesh_spec =
      parallel::FormatMeshSpec(parallel::ReplicaDegrees(options_.mesh));
  s.worker_binary = options_.worker_binary;
  s.rank_args = [this](int rank, const std::string& store_file) {
    return RankArgs(rank, store_file);
  };
  absl::StatusOr<std::string> secret = common::NewReplicaSecret();
  if (secret.ok()) {
    s.secret = *std::move(secret);
  } else {
    s.start_precondition = secret.status();
  }
  if (!options_.rank_devices.empty() &&
      static_cast<int>(options_.rank_devices.size()) != world_size_) {
    s.start_precondition = absl::InvalidArgumentError(absl::StrCat(
        "replica ", options_.index, ": device num ",
        options_.rank_devices.size(), " and world size ", world_size_,
        " not match (rank_devices names one device per rank)"));
  }
  s.startup_timeout = options_.startup_timeout;
  s.restart.restart = options_.restart;
  s.restart.backoff = options_.restart_backoff;
  s.restart.backoff_max = options_.restart_backoff_max;
  s.restart.max_crashes_in_a_row = options_.max_crashes_in_a_row;
  s.cancel_stop_timeout = options_.cancel_stop_timeout;
  s.deadline_grace = options_.deadline_grace;
  s.on_first_start_failed = options_.on_first_start_failed;
  supervisor_ = std::make_unique<Supervisor>(std::move(s), &launcher_, &clock_);
  supervisor_->SetWake([this] { WakeLoop(); });
}

LocalReplica::~LocalReplica() { Shutdown(absl::ZeroDuration()); }

std::vector<std::string> LocalReplica::RankArgs(
    int rank, const std::string& store) const {
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
}

void LocalReplica::Start() {
  loop_ = std::thread([this] { Loop(); });
}

void LocalReplica::Loop() {
  while (true) {
    const absl::Time next = supervisor_->RunOnce(clock_.Now());
    if (supervisor_->stopped()) return;
    absl::MutexLock lock(&wake_mu_);
    if (!woken_) wake_cv_.WaitWithDeadline(&wake_mu_, next);
    woken_ = false;
  }
}

void LocalReplica::WakeLoop() {
  absl::MutexLock lock(&wake_mu_);
  woken_ = true;
  wake_cv_.Signal();
}

dserve::v1::ReplicaInfo LocalReplica::Info() const {
  dserve::v1::ReplicaInfo info;
  info.set_index(options_.index);
  *info.mutable_mesh() = parallel::MeshLayoutFromDegrees(options_.mesh);
  info.set_world_size(world_size_);
  supervisor_->FillInfo(info);
  return info;
}

bool LocalReplica::RestartPending() const {
  return supervisor_->restart_pending();
}

std::vector<dserve::v1::ModelInfo> LocalReplica::Models() const {
  return supervisor_->Models();
}

absl::Status LocalReplica::Run(dserve::internal::v1::ExecutionPlan plan,
                               EventCallback on_event, DoneCallback on_done) {
  return supervisor_->Run(std::move(plan), std::move(on_event),
                          std::move(on_done));
}

void LocalReplica::Cancel() { supervisor_->Cancel(); }

void LocalReplica::SetStateObserver(std::function<void()> observer) {
  supervisor_->SetStateObserver(std::move(observer));
}

void LocalReplica::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  supervisor_->RequestShutdown(grace);
  if (loop_.joinable()) loop_.join();
}

}  // namespace dserve::scheduler
