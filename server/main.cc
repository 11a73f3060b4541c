// dserve_server: the frontend process.
//
//   dserve_server --port=50051 --replicas=2 [--mesh=dp=2,cfg=2] ...
//
// Data path: flags -> replicas (fork/exec of dserve_worker ranks) ->
// scheduler loop -> gRPC DiffusionService (+ health, reflection) -> wait
// for SIGTERM/SIGINT -> drain: health NOT_SERVING, stop admitting, let
// queued and running jobs finish within --grace_period_s, cancel the rest,
// stop the replicas and the gRPC server, exit 0.
//
// Exit codes: 0 after a drain; 1 when the server cannot start (bad flags,
// port in use).

#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/blas_kernels.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "parallel/device_mesh.h"
#include "scheduler/clock.h"
#include "scheduler/job_table.h"
#include "scheduler/replica.h"
#include "scheduler/scheduler.h"
#include "server/bearer_token_auth.h"
#include "server/diffusion_service.h"
#include "server/metrics.h"
#include "server/metrics_http_server.h"
#include "server/request_validator.h"
#include "server/serving_metrics.h"
#include "server/signal_watcher.h"
#include "server/tls_credentials.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(int, port, 50051, "TCP port for the gRPC API (0 = any free port).");
ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on.");
ABSL_FLAG(int, replicas, 0,
          "Data-parallel replicas (dp). 0 = take dp from --mesh (default 1).");
ABSL_FLAG(std::string, mesh, "",
          "Parallel layout, e.g. dp=2,cfg=2,ulysses=2 (keys dp, cfg, ring, "
          "ulysses, pp, tp; omitted keys are 1). Each replica runs "
          "cfg*ring*ulysses*pp*tp worker processes.");
ABSL_FLAG(std::string, model_dir, "",
          "Model directory passed to the workers; empty = built-in default "
          "model.");
ABSL_FLAG(int, queue_capacity, 64, "Most jobs waiting at once, 1..100000.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the server; with --tls_key, the API is "
          "served over TLS (empty = plaintext).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle; clients must present a certificate it signed "
          "(mutual TLS). Needs --tls_cert/--tls_key.");
ABSL_FLAG(std::string, auth_token_file, "",
          "File whose first line is a bearer token; the DiffusionService "
          "then requires 'authorization: Bearer <token>' (health and "
          "reflection stay open). Empty = no token.");
ABSL_FLAG(int, metrics_port, 0,
          "Serve Prometheus metrics over HTTP at :<port>/metrics on --host "
          "(0 = off).");
ABSL_FLAG(int, max_queue_age_s, 600,
          "A job queued this long runs before any younger job whatever its "
          "priority (no starvation of low priority); 0 = strict priority.");
ABSL_FLAG(int, max_batch, 1,
          "Most compatible queued jobs (same model, size, frames, steps, "
          "shift, sampler, output format) run together as one batch, 1..64; "
          "1 = no batching.");
ABSL_FLAG(int, batch_wait_ms, 0,
          "How long the oldest job of a partial batch waits for companions "
          "before it runs anyway, 0..60000 ms; only with --max_batch > 1.");
ABSL_FLAG(int, max_prompt_chars, 2048, "Longest prompt, in characters.");
ABSL_FLAG(int, max_steps, 200, "Most denoising steps per request.");
ABSL_FLAG(int, max_frames, 0,
          "Most frames per request (0 = the model's limit).");
ABSL_FLAG(int64_t, max_pixels, 0,
          "Most output pixels (width*height*num_frames) per request (0 = the "
          "model's size limits).");
ABSL_FLAG(int, max_message_bytes, 4 << 20,
          "Largest request message the server accepts, in bytes "
          "(1 KiB..1 GiB); larger ones get RESOURCE_EXHAUSTED from gRPC.");
ABSL_FLAG(int, grace_period_s, 30,
          "On SIGTERM/SIGINT, how long queued and running jobs may take to "
          "finish before they are cancelled.");
ABSL_FLAG(std::string, worker_binary, "",
          "Path of dserve_worker; empty = find it in this binary's runfiles "
          "or next to it (../worker/dserve_worker).");
ABSL_FLAG(int, worker_threads, 1, "LibTorch threads per worker process.");
ABSL_FLAG(bool, async_ulysses, false,
          "Ulysses replicas start the q, k and v all-to-alls together "
          "instead of one after another (passed to every worker as "
          "--async_ulysses). Same images either way.");
ABSL_FLAG(int, startup_timeout_s, 120,
          "How long a replica may take to start (rendezvous + model load).");
ABSL_FLAG(std::string, log_level, "info",
          "trace, debug, info, warn, error (trace logs every step).");

namespace dserve::server {
namespace {

constexpr char kVersion[] = "0.1.0";
constexpr char kServiceName[] = "dserve.v1.DiffusionService";

bool IsExecutable(const std::string& path) {
  return !path.empty() && access(path.c_str(), X_OK) == 0;
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Where dserve_worker is when --worker_binary is not given: the runfiles of
// this binary (bazel run / bazel-bin/...), or the sibling package directory
// (bazel-bin layout, and the runfiles tree of a test that depends on us).
absl::StatusOr<std::string> FindWorkerBinary(const std::string& argv0) {
  std::vector<std::string> candidates;
  std::vector<std::string> selves = {argv0};
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) selves.push_back(std::string(exe, n));
  for (const std::string& self : selves) {
    for (const char* workspace : {"dserve", "__main__"}) {
      candidates.push_back(
          absl::StrCat(self, ".runfiles/", workspace, "/worker/dserve_worker"));
    }
    candidates.push_back(absl::StrCat(Dirname(self), "/../worker/dserve_worker"));
  }
  for (const std::string& candidate : candidates) {
    if (IsExecutable(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(
      "cannot find dserve_worker (looked in ", candidates.front(), " and ",
      candidates.size() - 1, " other places); pass --worker_binary=PATH"));
}

// The deployment layout from --mesh and --replicas.
absl::StatusOr<dserve::v1::MeshLayout> ResolveMesh(const std::string& spec,
                                                   int replicas) {
  absl::StatusOr<parallel::MeshDegrees> degrees = parallel::ParseMeshSpec(spec);
  if (!degrees.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--mesh=\"", spec, "\": ", degrees.status().message()));
  }
  const bool spec_names_dp = spec.find("dp=") != std::string::npos;
  if (replicas < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--replicas=", replicas, " is out of range (allowed: 0..",
        parallel::kMaxDegree, ", 0 = dp from --mesh)"));
  }
  if (replicas > 0) {
    if (spec_names_dp && degrees->dp != replicas) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--replicas=", replicas, " and --mesh dp=", degrees->dp,
          " disagree; set one of them (or make them equal)"));
    }
    degrees->dp = replicas;
  }
  if (absl::Status s = parallel::ValidateDegrees(*degrees); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--mesh=\"", parallel::FormatMeshSpec(*degrees),
                     "\": ", s.message()));
  }
  dserve::v1::MeshLayout mesh;
  mesh.set_dp(degrees->dp);
  mesh.set_cfg(degrees->cfg);
  mesh.set_ring(degrees->ring);
  mesh.set_ulysses(degrees->ulysses);
  mesh.set_pp(degrees->pp);
  mesh.set_tp(degrees->tp);
  return mesh;
}

absl::Status CheckRange(const char* flag, int value, int lo, int hi) {
  if (value >= lo && value <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--", flag, "=", value, " is out of range (allowed: ", lo, "..", hi, ")"));
}

absl::Status CheckFlags() {
  for (absl::Status s : {
           CheckRange("port", absl::GetFlag(FLAGS_port), 0, 65535),
           CheckRange("queue_capacity", absl::GetFlag(FLAGS_queue_capacity), 1,
                      100000),
           CheckRange("max_prompt_chars", absl::GetFlag(FLAGS_max_prompt_chars),
                      1, 1 << 20),
           CheckRange("max_steps", absl::GetFlag(FLAGS_max_steps), 1, 10000),
           CheckRange("max_frames", absl::GetFlag(FLAGS_max_frames), 0,
                      100000),
           absl::GetFlag(FLAGS_max_pixels) < 0
               ? absl::InvalidArgumentError(absl::StrCat(
                     "--max_pixels=", absl::GetFlag(FLAGS_max_pixels),
                     " is out of range (allowed: 0 = off, or > 0)"))
               : absl::OkStatus(),
           CheckRange("max_message_bytes",
                      absl::GetFlag(FLAGS_max_message_bytes), 1024, 1 << 30),
           CheckRange("grace_period_s", absl::GetFlag(FLAGS_grace_period_s), 0,
                      86400),
           CheckRange("metrics_port", absl::GetFlag(FLAGS_metrics_port), 0,
                      65535),
           CheckRange("max_queue_age_s", absl::GetFlag(FLAGS_max_queue_age_s),
                      0, 86400),
           CheckRange("max_batch", absl::GetFlag(FLAGS_max_batch), 1, 64),
           CheckRange("batch_wait_ms", absl::GetFlag(FLAGS_batch_wait_ms), 0,
                      60000),
           CheckRange("worker_threads", absl::GetFlag(FLAGS_worker_threads), 1,
                      1024),
           CheckRange("startup_timeout_s",
                      absl::GetFlag(FLAGS_startup_timeout_s), 1, 86400),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// Thread-safe random seeds for requests that leave `seed` unset.
class SeedSource {
 public:
  uint64_t Next() {
    absl::MutexLock lock(&mu_);
    return absl::Uniform<uint64_t>(gen_);
  }

 private:
  absl::Mutex mu_;
  absl::BitGen gen_ ABSL_GUARDED_BY(mu_);
};

// Health service name the liveness probe asks for (deploy/k8s).
constexpr char kLivenessService[] = "liveness";

void SetServing(grpc::Server& server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server.GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  health->SetServingStatus(kServiceName, serving);
  // Liveness ("is the process answering?") stays SERVING through replica
  // restarts and drains, so Kubernetes never kills a pod that is only busy
  // or draining; readiness ("" and the service name) is what flips.
  health->SetServingStatus(kLivenessService, true);
}

int Run(const std::string& argv0) {
  if (absl::Status s = CheckFlags(); !s.ok()) {
    spdlog::error("[server] {}", std::string(s.message()));
    return 1;
  }
  absl::StatusOr<dserve::v1::MeshLayout> mesh =
      ResolveMesh(absl::GetFlag(FLAGS_mesh), absl::GetFlag(FLAGS_replicas));
  if (!mesh.ok()) {
    spdlog::error("[server] {}", std::string(mesh.status().message()));
    return 1;
  }
  std::string worker_binary = absl::GetFlag(FLAGS_worker_binary);
  if (worker_binary.empty()) {
    absl::StatusOr<std::string> found = FindWorkerBinary(argv0);
    if (!found.ok()) {
      spdlog::error("[server] {}", std::string(found.status().message()));
      return 1;
    }
    worker_binary = *found;
  } else if (!IsExecutable(worker_binary)) {
    spdlog::error("[server] --worker_binary={} is not an executable file",
                  worker_binary);
    return 1;
  }

  // Replicas start in the background; the API is up (NOT_SERVING) meanwhile.
  std::vector<std::unique_ptr<scheduler::LocalReplica>> replicas;
  std::vector<scheduler::ReplicaHandle*> handles;
  for (int i = 0; i < mesh->dp(); ++i) {
    scheduler::LocalReplicaOptions options;
    options.index = i;
    options.worker_binary = worker_binary;
    options.mesh = *mesh;
    options.model_dir = absl::GetFlag(FLAGS_model_dir);
    options.threads = absl::GetFlag(FLAGS_worker_threads);
    options.startup_timeout =
        absl::Seconds(absl::GetFlag(FLAGS_startup_timeout_s));
    // Workers log at the server's level, so --log_level=trace shows every
    // step on every rank.
    options.extra_worker_args = {
        absl::StrCat("--log_level=", absl::GetFlag(FLAGS_log_level)),
        absl::StrCat("--async_ulysses=",
                     absl::GetFlag(FLAGS_async_ulysses) ? "true" : "false")};
    replicas.push_back(std::make_unique<scheduler::LocalReplica>(options));
    handles.push_back(replicas.back().get());
  }
  const char* blas_core = std::getenv("OPENBLAS_CORETYPE");
  spdlog::info("[server] dserve {} starting {} replica(s) of {} rank(s) each "
               "({}), worker {}, OPENBLAS_CORETYPE={}",
               kVersion, mesh->dp(), scheduler::ReplicaWorldSize(*mesh),
               scheduler::WorkerMeshSpec(*mesh), worker_binary,
               blas_core == nullptr ? "(unset: OpenBLAS decides)" : blas_core);

  scheduler::RealClock clock;
  // Before the scheduler and the job table: jobs hold listeners into it.
  MetricsRegistry metrics_registry;
  ServingMetrics serving_metrics(&metrics_registry);
  scheduler::SchedulerOptions scheduler_options;
  scheduler_options.queue_capacity = absl::GetFlag(FLAGS_queue_capacity);
  scheduler_options.max_queue_age =
      absl::GetFlag(FLAGS_max_queue_age_s) > 0
          ? absl::Seconds(absl::GetFlag(FLAGS_max_queue_age_s))
          : absl::InfiniteDuration();
  scheduler_options.max_batch = absl::GetFlag(FLAGS_max_batch);
  scheduler_options.batch_wait =
      absl::Milliseconds(absl::GetFlag(FLAGS_batch_wait_ms));
  scheduler::Scheduler scheduler(scheduler_options, handles, &clock);
  scheduler::JobTable jobs(scheduler::JobTableOptions(), &clock);
  SeedSource seeds;
  ValidationLimits limits;
  limits.max_prompt_chars = absl::GetFlag(FLAGS_max_prompt_chars);
  limits.max_steps = absl::GetFlag(FLAGS_max_steps);
  limits.max_frames = absl::GetFlag(FLAGS_max_frames);
  limits.max_pixels = absl::GetFlag(FLAGS_max_pixels);
  RequestValidator validator(limits, [&seeds] { return seeds.Next(); });
  DiffusionServiceOptions service_options;
  service_options.mesh = *mesh;
  service_options.version = kVersion;
  if (const std::string path = absl::GetFlag(FLAGS_auth_token_file);
      !path.empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(path, "auth_token_file");
    if (!token.ok()) {
      spdlog::error("[server] {}", std::string(token.status().message()));
      return 1;
    }
    service_options.auth_token = *std::move(token);
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials({absl::GetFlag(FLAGS_tls_cert),
                             absl::GetFlag(FLAGS_tls_key),
                             absl::GetFlag(FLAGS_tls_client_ca)});
  if (!credentials.ok()) {
    spdlog::error("[server] {}", std::string(credentials.status().message()));
    return 1;
  }
  service_options.on_admitted =
      [&serving_metrics](const std::shared_ptr<scheduler::Job>& job) {
        serving_metrics.WatchJob(job);
      };
  serving_metrics.AddCollectors(handles, &jobs);
  // After the table and the replicas, so it stops before they go away.
  std::unique_ptr<MetricsHttpServer> metrics_http;
  if (const int metrics_port = absl::GetFlag(FLAGS_metrics_port);
      metrics_port > 0) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> started =
        MetricsHttpServer::Start(absl::GetFlag(FLAGS_host), metrics_port,
                                 &metrics_registry);
    if (!started.ok()) {
      spdlog::error("[server] {}", std::string(started.status().message()));
      return 1;
    }
    metrics_http = *std::move(started);
    spdlog::info("[server] metrics on http://{}:{}/metrics",
                 absl::GetFlag(FLAGS_host), metrics_http->port());
  }
  DiffusionService service(service_options, &scheduler, &jobs, &validator,
                           &clock);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string host = absl::GetFlag(FLAGS_host);
  const std::string address =
      absl::StrCat(host.find(':') != std::string::npos ? absl::StrCat("[", host, "]")
                                                       : host,
                   ":", absl::GetFlag(FLAGS_port));
  int bound_port = 0;
  builder.AddListeningPort(address, *credentials, &bound_port);
  builder.SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    spdlog::error("[server] cannot listen on {} (port in use or bad --host)",
                  address);
    return 1;
  }
  SetServing(*server, false);
  spdlog::info("[server] listening on {}:{}", host, bound_port);

  for (auto& replica : replicas) replica->Start();
  scheduler.Start();

  absl::Notification drain_requested;
  absl::StatusOr<std::unique_ptr<SignalWatcher>> signals =
      SignalWatcher::Start({SIGTERM, SIGINT}, [&drain_requested](int signo) {
        if (drain_requested.HasBeenNotified()) {
          spdlog::warn("[server] signal {} again; already draining", signo);
          return;
        }
        spdlog::info("[server] signal {} ({}): draining", signo,
                     strsignal(signo));
        drain_requested.Notify();
      });
  if (!signals.ok()) {
    spdlog::error("[server] {}", signals.status().ToString());
    return 1;
  }

  // Health follows the replicas until a drain starts.
  bool serving = false;
  while (!drain_requested.WaitForNotificationWithTimeout(
      absl::Milliseconds(200))) {
    const bool now_serving = scheduler.AnyReplicaServing();
    if (now_serving != serving) {
      serving = now_serving;
      SetServing(*server, serving);
      spdlog::info("[server] health: {}", serving ? "SERVING" : "NOT_SERVING");
    }
  }

  // Drain.
  SetServing(*server, false);
  service.StartDraining();
  scheduler.StopAdmitting(absl::UnavailableError(
      "server is draining (it received a shutdown signal) and accepts no new "
      "jobs; retry against another instance"));
  const int grace_s = absl::GetFlag(FLAGS_grace_period_s);
  spdlog::info("[server] waiting up to {} s for {} queued and running job(s)",
               grace_s, scheduler.queue_depth());
  if (!scheduler.WaitUntilIdle(absl::Seconds(grace_s))) {
    const absl::Status reason = absl::CancelledError(absl::StrCat(
        "the server shut down and the job did not finish within the ",
        grace_s, " s drain period (--grace_period_s); submit it again"));
    spdlog::warn("[server] grace period over; cancelling what is left");
    scheduler.CancelAll(reason);
    if (!scheduler.WaitUntilIdle(absl::Seconds(10))) {
      spdlog::warn("[server] some replicas did not stop their plans in 10 s");
    }
  }
  scheduler.Stop(absl::UnavailableError("the server shut down"));
  // Every job has ended, so every stream can finish; give them up to 5 s
  // to flush, then shut down with no grace: a graceful Shutdown would also
  // wait (until its deadline) for idle client connections to close after
  // the GOAWAY, which made SIGTERM take 5 s whenever a client held a
  // channel.
  const absl::Time flush_until = absl::Now() + absl::Seconds(5);
  while (service.open_streams() > 0 && absl::Now() < flush_until) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (service.open_streams() > 0) {
    spdlog::warn("[server] {} stream(s) still open after 5 s; cutting them",
                 service.open_streams());
  }
  server->Shutdown(std::chrono::system_clock::now());
  std::vector<std::thread> stoppers;
  for (auto& replica : replicas) {
    stoppers.emplace_back(
        [&replica] { replica->Shutdown(absl::Seconds(5)); });
  }
  for (std::thread& t : stoppers) t.join();
  signals->reset();
  spdlog::info("[server] stopped");
  return 0;
}

}  // namespace
}  // namespace dserve::server

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "dserve_server --port=50051 --replicas=N [--mesh=dp=N,cfg=..] ...: "
      "serves dserve.v1.DiffusionService over gRPC");
  absl::ParseCommandLine(argc, argv);
  // Before any thread starts: workers inherit it and load OpenBLAS with
  // kernels for this CPU (see common/blas_kernels.h).
  dserve::common::SetOpenBlasCoreTypeForChildren();
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v");
  const spdlog::level::level_enum level =
      spdlog::level::from_str(absl::GetFlag(FLAGS_log_level));
  if (level == spdlog::level::off && absl::GetFlag(FLAGS_log_level) != "off") {
    spdlog::error("[server] --log_level={} is not one of trace, debug, info, "
                  "warn, error, off",
                  absl::GetFlag(FLAGS_log_level));
    return 1;
  }
  spdlog::set_level(level);
  // A client that vanishes mid-write must not kill the server.
  signal(SIGPIPE, SIG_IGN);
  return dserve::server::Run(argv[0]);
}
