#ifndef DSERVE_SCHEDULER_REPLICA_H_
#define DSERVE_SCHEDULER_REPLICA_H_

// LocalReplica: one data-parallel replica whose W ranks are dserve_worker
// processes spawned on this host (fork/exec, no MPI).
//
// Its whole life is the Supervisor's one loop (supervisor.h: start-up,
// reaping, the ready line, start deadline, the running plan, health,
// restarts with restart_policy.h's back-off), run on one thread that calls
// Supervisor::RunOnce and sleeps until the time it asks for or until an
// input (Run, Cancel, Shutdown, the end of a plan's Execute call) wakes
// it. Ranks start through ProcessLauncher (WorkerProcess + a gRPC link to
// the leader whose Execute calls run on gRPC's callback API: no thread per
// plan). Every call to the leader carries the replica's secret
// (common/replica_secret.h), drawn once per replica; nothing else on the
// host can drive the replica (issue 16, finding 6).
//
// A rank that dies tears the replica down: the other ranks are killed, the
// replica becomes FAILED, and a running plan ends with UNAVAILABLE naming
// the replica, the rank, its pid and how it died. A replica that was READY
// before is then restarted (FAILED -> STARTING -> READY) after a back-off
// that doubles with each crash in a row (restart_backoff, 2x, 4x ... up to
// restart_backoff_max; a replica healthy for restart_backoff_max starts
// over at restart_backoff). A replica that never became READY stays FAILED:
// its first start-up failing means bad flags or a bad model, which a
// restart does not fix. A worker that refuses to start says why on its
// ready pipe ("error <reason>": a model that does not load); the start then
// fails with FAILED_PRECONDITION and that reason, and
// on_first_start_failed tells the owner (dserve_server exits).
//
// Ownership: owns its supervisor (and through it the worker processes:
// they are killed when the replica is shut down or destroyed, and die with
// the server via PR_SET_PDEATHSIG) and the loop thread. Thread-safe.
// Start/Run/Cancel/Info return at once; Shutdown and the destructor block
// until the processes are reaped.

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
#include "common/served_models.h"
#include "parallel/device_mesh.h"
#include "proto/dserve/internal/v1/replica_leader.pb.h"
#include "scheduler/clock.h"
#include "scheduler/process_launcher.h"
#include "scheduler/replica_handle.h"
#include "scheduler/supervisor.h"

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
  // Gives up (stays FAILED, the failure saying why) after this many
  // crashes in a row; 0 = never.
  int max_crashes_in_a_row = 0;
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
  bool RestartPending() const override;
  void Shutdown(absl::Duration grace) override;

 private:
  // The loop thread: RunOnce, then wait for the time it asked for or a
  // wake-up, until the supervisor stopped.
  void Loop();
  void WakeLoop();
  // argv[1..] of rank `rank` (the worker's flags).
  std::vector<std::string> RankArgs(int rank, const std::string& store) const;

  const LocalReplicaOptions options_;
  const int world_size_;
  RealClock clock_;
  ProcessLauncher launcher_;
  std::unique_ptr<Supervisor> supervisor_;

  absl::Mutex wake_mu_;
  absl::CondVar wake_cv_;
  bool woken_ ABSL_GUARDED_BY(wake_mu_) = false;
  std::thread loop_;
  bool shut_down_ = false;  // Shutdown's caller only.
};

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_REPLICA_H_
