#ifndef DSERVE_TESTS_TESTING_SERVER_PROCESS_H_
#define DSERVE_TESTS_TESTING_SERVER_PROCESS_H_

// The real dserve server as a child process on a free loopback port, for the
// end-to-end suite. Start() fork/execs //server:dserve_server from the test's
// runfiles with
//
//   --port=P --replicas=R --worker_threads=T --queue_capacity=K
//   --worker_binary=<runfiles>/worker/dserve_worker --max_job_seconds=0
//   [extra flags]
//
// and (unless told not to) waits until grpc.health.v1 reports SERVING, which
// the server only does once every replica's worker processes are up.
// Stop() sends SIGTERM and returns the exit code, so tests can check the
// graceful drain exits 0.
//
// Ownership: owns the server process (and through its process group the
// worker processes it spawns) and one channel to it. A ServerProcess that is
// destroyed without Stop() kills the group with SIGKILL.
// Thread-safety: channel() and the stubs made from it are thread-safe; Stop,
// Signal and WaitForExit must be called from one thread.
// Blocking: Start, WaitForHealth, Stop and WaitForExit block up to their
// timeouts.

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/channel.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.pb.h"
#include "tests/testing/subprocess.h"

namespace dserve::tests {

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read back,
// closed). Another process could take it before the server binds; the server
// would then fail to start and Start() reports it.
absl::StatusOr<int> PickFreePort();

using HealthStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

class ServerProcess {
 public:
  struct Options {
    int replicas = 2;
    int worker_threads = 1;
    int queue_capacity = 16;
    // Appended after the standard flags (later flags win in absl).
    std::vector<std::string> extra_flags;
    // Wait for SERVING before Start returns.
    bool wait_until_serving = true;
    absl::Duration startup_timeout = absl::Seconds(180);
  };

  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const Options& options);

  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  std::string address() const;
  pid_t pid() const { return process_->pid(); }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  // One health Check ("" = the whole server). UNAVAILABLE while nothing
  // listens on the port yet.
  absl::StatusOr<HealthStatus> CheckHealth(absl::Duration timeout);

  // Polls health until it reports `want`. Every distinct answer seen on the
  // way (in order, without repeats) is appended to `observed` when given.
  // Fails early with INTERNAL if the server process exits.
  absl::Status WaitForHealth(HealthStatus want, absl::Duration timeout,
                             std::vector<HealthStatus>* observed = nullptr);

  absl::Status Signal(int signal) { return process_->Signal(signal); }
  absl::StatusOr<int> WaitForExit(absl::Duration timeout) {
    return process_->Wait(timeout);
  }
  bool exited() { return process_->Poll(); }

  // SIGTERM, then waits for the exit code.
  absl::StatusOr<int> Stop(absl::Duration timeout = absl::Seconds(60));

 private:
  ServerProcess(int port, std::unique_ptr<Subprocess> process);

  int port_;
  std::unique_ptr<Subprocess> process_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace dserve::tests

#endif  // DSERVE_TESTS_TESTING_SERVER_PROCESS_H_
