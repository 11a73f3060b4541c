#ifndef DSERVE_SCHEDULER_PROCESS_LAUNCHER_H_
#define DSERVE_SCHEDULER_PROCESS_LAUNCHER_H_

// ProcessLauncher: the production WorkerLauncher. Ranks are WorkerProcesses
// (fork/exec, worker_process.h); leaders are reached over loopback gRPC
// (leader_client.h). Stateless apart from the replica index its links name
// in their errors; thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "scheduler/worker_launcher.h"

namespace dserve::scheduler {

class ProcessLauncher final : public WorkerLauncher {
 public:
  explicit ProcessLauncher(int replica) : replica_(replica) {}

  absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(
      const std::string& binary, std::vector<std::string> args,
      bool with_ready_pipe, std::vector<std::string> extra_env) override;
  std::unique_ptr<LeaderLink> Connect(const std::string& address,
                                      const std::string& secret) override;

 private:
  const int replica_;
};

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_PROCESS_LAUNCHER_H_
