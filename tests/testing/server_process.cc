#include "tests/testing/server_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/rpc_status.h"
#include "common/status_macros.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace dserve::tests {

absl::StatusOr<int> PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string error = std::strerror(errno);
    close(fd);
    return absl::InternalError(absl::StrCat("bind/getsockname: ", error));
  }
  close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

namespace {

// A channel with its own subchannel pool, so no other channel's connection
// state or reconnect backoff is shared with it.
std::shared_ptr<grpc::Channel> PrivateChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

}  // namespace

ServerProcess::ServerProcess(int port, std::unique_ptr<Subprocess> process)
    : port_(port), process_(std::move(process)) {
  channel_ = PrivateChannel(address());
}

ServerProcess::~ServerProcess() = default;

std::string ServerProcess::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const Options& options) {
  ASSIGN_OR_RETURN(std::string binary, RunfilePath("server/dserve_server"));
  // Named explicitly so the server never guesses from its own location.
  ASSIGN_OR_RETURN(const std::string worker,
                   RunfilePath("worker/dserve_worker"));
  ASSIGN_OR_RETURN(const int port, PickFreePort());
  std::vector<std::string> argv = {
      std::move(binary),
      absl::StrCat("--port=", port),
      absl::StrCat("--replicas=", options.replicas),
      absl::StrCat("--worker_threads=", options.worker_threads),
      absl::StrCat("--queue_capacity=", options.queue_capacity),
      absl::StrCat("--worker_binary=", worker),
      // The suites size their jobs by wall time on a shared machine, where
      // the replica's start-up cost calibration (--max_job_seconds, default
      // the model's 600 s) varies with the load; deadline_e2e_test checks
      // the budget with --max_job_seconds=-1.
      "--max_job_seconds=0",
  };
  argv.insert(argv.end(), options.extra_flags.begin(),
              options.extra_flags.end());
  ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> process,
                   Subprocess::Start(argv));
  std::unique_ptr<ServerProcess> server(
      new ServerProcess(port, std::move(process)));
  if (options.wait_until_serving) {
    RETURN_IF_ERROR(server->WaitForHealth(
        grpc::health::v1::HealthCheckResponse::SERVING,
        options.startup_timeout));
  }
  return server;
}

absl::StatusOr<HealthStatus> ServerProcess::CheckHealth(
    absl::Duration timeout) {
  // A fresh connection per probe, as a kubelet or grpc_health_probe makes.
  // Reusing one channel does not work for watching startup: after the first
  // probes find nothing listening, the channel stays in TRANSIENT_FAILURE
  // (failing RPCs fast with the old error) for a reconnect backoff that can
  // outlast the server's whole NOT_SERVING phase.
  std::unique_ptr<grpc::health::v1::Health::Stub> stub =
      grpc::health::v1::Health::NewStub(PrivateChannel(address()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(timeout));
  // The service's own name, not "": gRPC's default health service answers
  // SERVING for "" from BuildAndStart until the server sets NOT_SERVING a
  // moment later, while an unregistered name is NOT_FOUND until then.
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("dserve.v1.DiffusionService");
  grpc::health::v1::HealthCheckResponse response;
  RETURN_IF_ERROR(
      common::FromGrpcStatus(stub->Check(&context, request, &response)));
  return response.status();
}

absl::Status ServerProcess::WaitForHealth(HealthStatus want,
                                          absl::Duration timeout,
                                          std::vector<HealthStatus>* observed) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::UnavailableError("no health check answered yet");
  while (absl::Now() < deadline) {
    if (process_->Poll()) {
      absl::StatusOr<int> code = process_->Wait(absl::ZeroDuration());
      return absl::InternalError(absl::StrCat(
          "server exited while waiting for health ",
          grpc::health::v1::HealthCheckResponse::ServingStatus_Name(want),
          ": ", code.ok() ? absl::StrCat("exit code ", *code)
                          : std::string(code.status().message())));
    }
    absl::StatusOr<HealthStatus> health = CheckHealth(absl::Seconds(1));
    if (health.ok()) {
      if (observed != nullptr &&
          (observed->empty() || observed->back() != *health)) {
        observed->push_back(*health);
      }
      if (*health == want) return absl::OkStatus();
      last = absl::FailedPreconditionError(absl::StrCat(
          "health is ",
          grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*health)));
    } else {
      last = health.status();
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "server on port ", port_, " did not report ",
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(want),
      " within ", absl::FormatDuration(timeout), "; last: ", last.ToString()));
}

absl::StatusOr<int> ServerProcess::Stop(absl::Duration timeout) {
  if (!process_->Poll()) {
    RETURN_IF_ERROR(process_->Signal(SIGTERM));
  }
  return process_->Wait(timeout);
}

}  // namespace dserve::tests
