#ifndef DSERVE_SCHEDULER_REPLICA_H_
#define DSERVE_SCHEDULER_REPLICA_H_

// LocalReplica: one data-parallel replica whose W ranks are dserve_worker
// processes spawned on this host (fork/exec, no MPI).
//
// Start-up (on the replica's supervisor thread):
//   make a fresh directory only this user can enter (mkdtemp, 0700) ->
//   spawn ranks 0..W-1 with --store_file=<dir>/store (a c10d FileStore: no
//   listening port) and the replica's secret in their environment, rank 0
//   with a ready pipe -> read "leader <port>" -> connect a ReplicaLeader
//   stub on 127.0.0.1 -> GetStatus (the worker's ModelInfo list is what the
//   frontend validates against) -> READY. Every call to the leader carries
//   the secret (common/replica_secret.h), drawn once per replica; nothing
//   else on the host can drive the replica (issue 16, finding 6).
// After that the supervisor polls its children (waitpid). A rank that dies
// tears the replica down: the other ranks are killed, the replica becomes
// FAILED, and a running plan ends with UNAVAILABLE naming the replica, the
// rank, its pid and how it died. A replica that was READY before is then
// restarted (FAILED -> STARTING -> READY) after a back-off that doubles
// with each crash in a row (restart_backoff, 2x, 4x ... up to
// restart_backoff_max; a replica healthy for restart_backoff_max starts
// over at restart_backoff). A replica that never became READY stays FAILED:
// its first start-up failing means bad flags or a bad model, which a
// restart does not fix. A worker that refuses to start says why on its
// ready pipe ("error <reason>": a model that does not load); the start then
// fails with FAILED_PRECONDITION and that reason, and
// on_first_start_failed tells the owner (dserve_server exits).
//
// Ownership: owns its worker processes (they are killed when the replica is
// shut down or destroyed, and die with the server via PR_SET_PDEATHSIG), the
// leader channel, a supervisor thread and a thread per running plan.
// Thread-safe. Start/Run/Cancel/Info return at once; Shutdown and the
// destructor block until the processes are reaped.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "common/served_models.h"
#include "parallel/device_mesh.h"
#include "proto/dserve/internal/v1/replica_leader.grpc.pb.h"
#include "scheduler/replica_handle.h"
#include "scheduler/worker_process.h"

namespace dserve::scheduler {

struct LocalReplicaOptions {
  // Data-parallel index of this replica, 0..dp-1.
  int index = 0;
  // Path of the dserve_worker binary.
  std::string worker_binary;
  // The deployment's layout; the replica runs cfg*ring*ulysses*pp*tp ranks
  // (parallel::ReplicaDegrees, passed to each worker as --mesh) and reports
  // the whole layout in Info().mesh.
  parallel::MeshDegrees mesh;
  // Passed to the workers as --model_dir (empty = built-in default model).
  std::string model_dir;
  // Several models instead (model_dir then empty): passed as one
  // --model=NAME=DIR per entry (DIR empty = the built-in model under NAME)
  // and --default_model (empty = the first). Every rank loads every model.
  std::vector<common::ModelSpec> models;
  std::string default_model;
  // Called once, on the supervisor thread, when the replica's first start
  // fails (it then stays FAILED). FAILED_PRECONDITION means a worker
  // refused to start and said why on its ready pipe ("error <message>": a
  // model that does not load, a mesh that does not fit it).
  std::function<void(const absl::Status&)> on_first_start_failed;
  // Device of each rank ("cpu", "cuda:N"), in rank order, passed as
  // --device; empty = every rank on the CPU. When set, its size must be the
  // replica's world size (parallel::DevicesByReplica cuts the server's
  // --devices into replicas).
  std::vector<std::string> rank_devices;
  // Passed to every rank as --dtype ("" = the worker's default for its
  // device: bf16 on CUDA, fp32 on CPU) and --comm (auto, nccl, gloo).
  std::string dtype;
  std::string comm = "auto";
  // LibTorch intra-op threads per worker (--threads).
  int threads = 1;
  // From spawning rank 0 until the leader answers GetStatus.
  absl::Duration startup_timeout = absl::Seconds(120);
  // Restart after a crash (see the class comment); false leaves it FAILED.
  bool restart = true;
  absl::Duration restart_backoff = absl::Seconds(1);
  absl::Duration restart_backoff_max = absl::Seconds(30);
  // After a cancelled Execute call ends, how long the replica stays BUSY
  // waiting for the leader to report the plan stopped (it stops at the
  // next step boundary, so this bounds one step).
  absl::Duration cancel_stop_timeout = absl::Seconds(60);
  // The Execute call's gRPC deadline is the plan's deadline plus this
  // (the leader normally stops the plan at its deadline first).
  absl::Duration deadline_grace = absl::Seconds(5);
  // Appended to every worker's command line (e.g. "--log_level=debug").
  std::vector<std::string> extra_worker_args;
};

class LocalReplica final : public ReplicaHandle {
 public:
  explicit LocalReplica(LocalReplicaOptions options);
  ~LocalReplica() override;
  LocalReplica(const LocalReplica&) = delete;
  LocalReplica& operator=(const LocalReplica&) = delete;

  // Starts the worker processes in the background; the replica is STARTING
  // until they are ready, then READY (or FAILED). Call once.
  void Start();

  // ReplicaHandle.
  int index() const override { return options_.index; }
  dserve::v1::ReplicaInfo Info() const override;
  std::vector<dserve::v1::ModelInfo> Models() const override;
  absl::Status Run(dserve::internal::v1::ExecutionPlan plan,
                   EventCallback on_event, DoneCallback on_done) override;
  void Cancel() override;
  void SetStateObserver(std::function<void()> observer) override;
  void Shutdown(absl::Duration grace) override;

 private:
  // Supervisor thread: start-up, then watching the children until shutdown.
  void Supervise();
  absl::Status StartProcesses();
  absl::Status ConnectToLeader(int port, absl::Time give_up);
  // One short GetStatus on the leader to refresh rank_devices_ (GPU memory
  // changes as plans run); failures are ignored (the supervisor notices a
  // dead rank on its own). Blocks up to a second.
  void RefreshRankDevices();
  // Next line from rank 0's ready pipe; CANCELLED once Shutdown was asked.
  absl::StatusOr<std::string> ReadReadyLine(absl::Time give_up);
  // Polls the children until shutdown is requested (returns false) or a
  // rank died and the replica was torn down (returns true).
  bool MonitorChildren();
  // Sleeps `backoff` unless shutdown is requested first (returns false).
  bool SleepUnlessShutdown(absl::Duration backoff);
  // After a crash: waits for the failed plan (if any) to be reported, then
  // forgets the dead processes and goes FAILED -> STARTING. False when
  // shutdown was requested meanwhile.
  bool PrepareRestart();
  void TearDown(const absl::Status& failure);
  void StopProcesses(absl::Duration grace);

  // Run thread: one Execute RPC.
  void ExecutePlan(dserve::internal::v1::ExecutionPlan plan,
                   EventCallback on_event, DoneCallback on_done);

  // After a cancelled Execute: polls the leader's GetStatus until it is not
  // busy (or options_.cancel_stop_timeout, a failure or shutdown). Blocks.
  void WaitUntilLeaderIdle(dserve::internal::v1::ReplicaLeader::Stub& stub,
                           const std::string& job_id);

  void SetState(dserve::v1::ReplicaState state);
  void NotifyObserver();
  // Puts the replica's secret on a call to the leader.
  void AddSecret(grpc::ClientContext& context) const;
  // Removes the store directory of the last start, if any.
  void RemoveStoreDir();

  const LocalReplicaOptions options_;
  const int world_size_;
  // The secret every leader call carries; empty when the kernel could not
  // give random bytes (then the replica fails to start).
  std::string secret_;
  absl::Status secret_status_;

  mutable absl::Mutex mu_;
  dserve::v1::ReplicaState state_ ABSL_GUARDED_BY(mu_) =
      dserve::v1::REPLICA_STATE_STARTING;
  std::vector<int> pids_ ABSL_GUARDED_BY(mu_);
  std::string leader_address_ ABSL_GUARDED_BY(mu_);
  std::vector<dserve::v1::ModelInfo> models_ ABSL_GUARDED_BY(mu_);
  // Every rank's device and GPU memory from the leader's GetStatus, taken
  // at start-up and refreshed every few seconds by the supervisor.
  std::vector<dserve::v1::RankDevice> rank_devices_ ABSL_GUARDED_BY(mu_);
  std::string current_job_id_ ABSL_GUARDED_BY(mu_);
  int64_t jobs_completed_ ABSL_GUARDED_BY(mu_) = 0;
  int restarts_ ABSL_GUARDED_BY(mu_) = 0;
  // From Run until the plan's on_done was decided (ExecutePlan's end).
  bool plan_running_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<dserve::internal::v1::ReplicaLeader::Stub> stub_
      ABSL_GUARDED_BY(mu_);
  // The running Execute call, for Cancel; null between plans.
  grpc::ClientContext* run_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  // Why the replica failed; a running plan ends with it.
  std::optional<absl::Status> failure_ ABSL_GUARDED_BY(mu_);
  std::function<void()> observer_ ABSL_GUARDED_BY(mu_);
  bool shutdown_requested_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration shutdown_grace_ ABSL_GUARDED_BY(mu_);
  absl::CondVar shutdown_cv_;
  std::thread run_thread_ ABSL_GUARDED_BY(mu_);

  // Supervisor-thread only.
  std::vector<std::unique_ptr<WorkerProcess>> processes_;
  // The private directory holding this start's FileStore; "" = none.
  std::string store_dir_;
  std::thread supervisor_;
  bool shut_down_ = false;  // Shutdown's caller only.
};

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_REPLICA_H_
