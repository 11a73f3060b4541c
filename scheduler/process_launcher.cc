#include "scheduler/process_launcher.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/leader_client.h"
#include "scheduler/worker_process.h"

namespace dserve::scheduler {

absl::StatusOr<std::unique_ptr<ChildProcess>> ProcessLauncher::Spawn(
    const std::string& binary, std::vector<std::string> args,
    bool with_ready_pipe, std::vector<std::string> extra_env) {
  absl::StatusOr<std::unique_ptr<WorkerProcess>> process = WorkerProcess::Spawn(
      binary, std::move(args), with_ready_pipe, std::move(extra_env));
  if (!process.ok()) return process.status();
  return std::unique_ptr<ChildProcess>(*std::move(process));
}

std::unique_ptr<LeaderLink> ProcessLauncher::Connect(
    const std::string& address, const std::string& secret) {
  return NewGrpcLeaderLink(address, secret, absl::StrCat("replica ", replica_));
}

}  // namespace dserve::scheduler
