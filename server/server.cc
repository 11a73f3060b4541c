#include "server/server.h"

#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/served_models.h"
#include "common/status_macros.h"
#include "common/step_cache_presets.h"
#include "grpcpp/ext/health_check_service_server_builder_option.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "parallel/device_mesh.h"
#include "parallel/devices.h"
#include "parallel/mesh_layout.h"
#include "scheduler/device_probe.h"
#include "scheduler/clock.h"
#include "scheduler/job_table.h"
#include "scheduler/replica.h"
#include "scheduler/scheduler.h"
#include "scheduler/store_dir.h"
#include "server/bearer_token_auth.h"
#include "server/diffusion_service.h"
#include "server/health_service.h"
#include "server/metrics.h"
#include "server/http_api.h"
#include "server/metrics_http_server.h"
#include "server/request_validator.h"
#include "server/serving_metrics.h"
#include "server/tls_credentials.h"
#include "spdlog/spdlog.h"
#include "worker/models/default_model/weights_path.h"

namespace dserve::server {
namespace {

constexpr char kVersion[] = "0.1.0";
constexpr char kServiceName[] = "dserve.v1.DiffusionService";
// Health service name the liveness probe asks for (deploy/k8s).
constexpr char kLivenessService[] = "liveness";

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

absl::StatusOr<std::string> ResolveWorkerBinary(const Server::Options& o) {
  if (o.worker_binary.empty()) return FindWorkerBinary(o.argv0);
  if (!IsExecutable(o.worker_binary)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--worker_binary=", o.worker_binary, " is not an executable file"));
  }
  return o.worker_binary;
}

// The deployment layout from --mesh and --replicas.
absl::StatusOr<parallel::MeshDegrees> ResolveMesh(const std::string& spec,
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
  return *degrees;
}

absl::Status CheckRange(const char* flag, int64_t value, int64_t lo,
                        int64_t hi) {
  if (value >= lo && value <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--", flag, "=", value, " is out of range (allowed: ", lo, "..", hi, ")"));
}

// --devices resolved and cut into replicas (result[r][k] = rank k of
// replica r). dserve_worker is asked what it can reach only when the list
// may name a GPU, so CPU deployments start as fast as before.
absl::StatusOr<std::vector<std::vector<parallel::Device>>>
ResolveReplicaDevices(const Server::Options& o,
                      const parallel::MeshDegrees& mesh,
                      const std::string& worker_binary) {
  const int dp = mesh.dp;
  const int world =
      static_cast<int>(parallel::WorldSize(parallel::ReplicaDegrees(mesh)));
  parallel::DeviceProbe probe;
  if (parallel::DevicesSpecMayUseCuda(o.devices)) {
    ASSIGN_OR_RETURN(probe, scheduler::ProbeWorkerDevices(worker_binary,
                                                          absl::Seconds(60)));
  }
  ASSIGN_OR_RETURN(const std::vector<parallel::Device> devices,
                   parallel::ResolveDevices(o.devices, dp, world, probe));
  if (o.comm == "nccl") {
    for (size_t i = 0; i < devices.size(); ++i) {
      if (!devices[i].is_cuda()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--comm=nccl needs a CUDA device for every rank, but --devices=",
            o.devices, " puts rank ", i % world, " of replica ", i / world,
            " on the cpu"));
      }
    }
  }
  ASSIGN_OR_RETURN(auto by_replica,
                   parallel::DevicesByReplica(devices, dp, world));
  for (size_t r = 0; o.comm == "nccl" && r < by_replica.size(); ++r) {
    if (parallel::HasRepeatedCudaDevice(by_replica[r])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--comm=nccl: replica ", r, " puts two ranks on one GPU (",
          parallel::FormatDevices(by_replica[r]),
          "); NCCL needs a GPU per rank. Use --comm=gloo (or auto) to let "
          "ranks share a GPU"));
    }
  }
  return by_replica;
}

// The shipped default model's directory, found in the runfiles of the
// server or the worker (or the working directory). A server whose weights
// are missing refuses to start and names the paths; it serves random
// weights only with --allow_random_weights (returns "" then).
absl::StatusOr<std::string> ResolveBuiltinModelDir(
    const Server::Options& o, const std::string& worker_binary) {
  std::error_code ec;
  std::vector<std::string> tried;
  for (const std::string& binary : {o.argv0, worker_binary}) {
    absl::StatusOr<std::string> dir =
        default_model::DefaultModelDirectory(binary);
    if (dir.ok()) return std::filesystem::absolute(*dir, ec).string();
    tried.push_back(std::string(dir.status().message()));
  }
  if (o.allow_random_weights) return std::string();
  return absl::FailedPreconditionError(absl::StrCat(
      "the default model's weights are missing: ", absl::StrJoin(tried, "; "),
      ". Pass --model_dir=DIR, or --allow_random_weights to serve untrained "
      "random weights on purpose"));
}

// What the workers load. The --model_dir form: that directory (its
// config.json or model_index.json must exist; the workers check the rest).
// Otherwise every model of common::ResolveServedModels, each directory
// checked the same way and made absolute, the built-in model's resolved to
// its shipped weights ("" with --allow_random_weights when they are
// missing).
struct WorkerModels {
  std::string model_dir;
  std::vector<common::ModelSpec> models;
  std::string default_model;
  // Some model runs on untrained random weights.
  bool random_weights = false;
};

absl::StatusOr<WorkerModels> ResolveWorkerModels(
    const Server::Options& o, const std::string& worker_binary) {
  ASSIGN_OR_RETURN(common::ServedModels served,
                   common::ResolveServedModels(common::ModelFlags{
                       o.models, o.model_repository, o.default_model,
                       o.model_dir}));
  WorkerModels out;
  std::error_code ec;
  if (!o.model_dir.empty()) {
    // dserve's own layout and a Wan2.1 release have config.json; a
    // diffusers directory has model_index.json. The workers check the rest.
    RETURN_IF_ERROR(common::CheckModelDirectory(
        o.model_dir, absl::StrCat("--model_dir=", o.model_dir)));
    out.model_dir = o.model_dir;
    return out;
  }
  for (common::ModelSpec& model : served.models) {
    if (model.dir.empty()) {
      ASSIGN_OR_RETURN(model.dir, ResolveBuiltinModelDir(o, worker_binary));
      out.random_weights |= model.dir.empty();
      continue;
    }
    RETURN_IF_ERROR(common::CheckModelDirectory(model.dir, model.source));
    model.dir = std::filesystem::absolute(model.dir, ec).string();
  }
  out.models = std::move(served.models);
  out.default_model = std::move(served.default_model);
  return out;
}

absl::Status CheckOptions(const Server::Options& o) {
  if (!o.dtype.empty() && o.dtype != "bf16" && o.dtype != "fp16" &&
      o.dtype != "fp32") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dtype=", o.dtype, " is not a dtype (allowed: bf16, fp16, fp32; "
        "empty = bf16 on CUDA, fp32 on CPU)"));
  }
  if (o.comm != "auto" && o.comm != "nccl" && o.comm != "gloo") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--comm=", o.comm, " is not a backend (allowed: auto, nccl, gloo)"));
  }
  RETURN_IF_ERROR(CheckRange("port", o.port, 0, 65535));
  RETURN_IF_ERROR(CheckRange("queue_capacity", o.queue_capacity, 1, 100000));
  RETURN_IF_ERROR(CheckRange("max_prompt_chars", o.max_prompt_chars, 1, 1 << 20));
  RETURN_IF_ERROR(CheckRange("max_steps", o.max_steps, 1, 10000));
  RETURN_IF_ERROR(CheckRange("max_frames", o.max_frames, 0, 100000));
  if (o.max_pixels < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_pixels=", o.max_pixels,
                     " is out of range (allowed: 0 = off, or > 0)"));
  }
  if (!(o.max_job_seconds == -1 ||
        (o.max_job_seconds >= 0 && o.max_job_seconds <= 86400 * 7))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_job_seconds=", o.max_job_seconds,
        " is out of range (allowed: -1 = the model's default, 0 = no "
        "budget, or up to 604800 seconds)"));
  }
  RETURN_IF_ERROR(
      common::StepCachePreset(o.step_cache, "--step_cache").status());
  RETURN_IF_ERROR(CheckRange("default_job_deadline_s", o.default_job_deadline_s,
                             0, 86400 * 7));
  RETURN_IF_ERROR(
      CheckRange("max_message_bytes", o.max_message_bytes, 1024, 1 << 30));
  RETURN_IF_ERROR(CheckRange("grace_period_s", o.grace_period_s, 0, 86400));
  RETURN_IF_ERROR(CheckRange("metrics_port", o.metrics_port, 0, 65535));
  RETURN_IF_ERROR(CheckRange("http_port", o.http_port, -1, 65535));
  RETURN_IF_ERROR(CheckRange("max_queue_age_s", o.max_queue_age_s, 0, 86400));
  RETURN_IF_ERROR(CheckRange("max_batch", o.max_batch, 1, 64));
  RETURN_IF_ERROR(CheckRange("batch_wait_ms", o.batch_wait_ms, 0, 60000));
  RETURN_IF_ERROR(
      CheckRange("result_store_mb", o.result_store_mb, 0, 1 << 20));
  RETURN_IF_ERROR(
      CheckRange("max_watchers_per_job", o.max_watchers_per_job, 0, 100000));
  RETURN_IF_ERROR(CheckRange("watcher_write_timeout_s",
                             o.watcher_write_timeout_s, 0, 86400));
  RETURN_IF_ERROR(CheckRange("worker_threads", o.worker_threads, 1, 1024));
  RETURN_IF_ERROR(CheckRange("text_cache_mb", o.text_cache_mb, 0, 1 << 20));
  RETURN_IF_ERROR(CheckRange("sp_compression_exact_steps",
                             o.sp_compression_exact_steps, 1,
                             parallel::kMaxSpExactSteps));
  RETURN_IF_ERROR(
      CheckRange("max_connection_age_s", o.max_connection_age_s, 0, 86400 * 30));
  return CheckRange("startup_timeout_s", o.startup_timeout_s, 1, 86400);
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

}  // namespace

// Declared in the order the data path needs them; destroyed in reverse, so
// the gRPC server goes first and the replicas last.
struct Server::Parts {
  Options options;
  parallel::MeshDegrees mesh;
  // Ranks per replica: WorldSize(ReplicaDegrees(mesh)).
  int replica_world_size = 1;
  std::vector<std::unique_ptr<scheduler::LocalReplica>> owned_replicas;
  std::vector<scheduler::ReplicaHandle*> replicas;
  scheduler::RealClock clock;
  // Before the scheduler and the job table: jobs hold listeners into it.
  MetricsRegistry metrics_registry;
  ServingMetrics serving_metrics{&metrics_registry};
  std::unique_ptr<scheduler::Scheduler> scheduler;
  std::unique_ptr<scheduler::JobTable> jobs;
  SeedSource seeds;
  std::unique_ptr<RequestValidator> validator;
  // After the table and the replicas, so it stops before they go away.
  std::unique_ptr<MetricsHttpServer> metrics_http;
  std::unique_ptr<DiffusionService> service;
  // Before grpc_server: gRPC holds a forwarder to it until it is destroyed.
  std::unique_ptr<HealthService> health;
  std::unique_ptr<grpc::Server> grpc_server;
  // After `service`: destroyed (stopped) before the service it calls.
  std::unique_ptr<HttpApi> http_api;
};

Server::Server() : parts_(std::make_unique<Parts>()) {}

absl::StatusOr<std::unique_ptr<Server>> Server::BuildAndStart(
    Options options) {
  std::unique_ptr<Server> server(new Server());
  RETURN_IF_ERROR(server->Start(std::move(options)));
  return server;
}

absl::Status Server::Start(Options options) {
  Parts& p = *parts_;
  p.options = std::move(options);
  const Options& o = p.options;
  RETURN_IF_ERROR(CheckOptions(o));
  ASSIGN_OR_RETURN(p.mesh, ResolveMesh(o.mesh, o.replicas));
  p.replica_world_size =
      static_cast<int>(parallel::WorldSize(parallel::ReplicaDegrees(p.mesh)));

  // Replicas start in the background; the API is up (NOT_SERVING) meanwhile.
  if (o.replica_handles.empty()) {
    ASSIGN_OR_RETURN(const std::string worker_binary, ResolveWorkerBinary(o));
    ASSIGN_OR_RETURN(const WorkerModels models,
                     ResolveWorkerModels(o, worker_binary));
    ASSIGN_OR_RETURN(const auto replica_devices,
                     ResolveReplicaDevices(o, p.mesh, worker_binary));
    // Stores a SIGKILLed server left behind (its supervisors could not
    // remove them).
    scheduler::RemoveStaleReplicaStoreDirs(scheduler::DefaultStoreBase());
    for (int i = 0; i < p.mesh.dp; ++i) {
      scheduler::LocalReplicaOptions replica;
      replica.index = i;
      replica.worker_binary = worker_binary;
      replica.mesh = p.mesh;
      replica.model_dir = models.model_dir;
      replica.models = models.models;
      replica.default_model = models.default_model;
      replica.on_first_start_failed = [&o](const absl::Status& s) {
        // Only the workers' own refusal: a model or flag error that a
        // restart does not fix.
        if (o.on_start_failure && absl::IsFailedPrecondition(s)) {
          o.on_start_failure(s);
        }
      };
      replica.threads = o.worker_threads;
      for (const parallel::Device& d : replica_devices[i]) {
        replica.rank_devices.push_back(d.ToString());
      }
      replica.dtype = o.dtype;
      // NCCL refuses two ranks of a group on one GPU: "auto" gives a
      // replica whose ranks share a GPU host-staged Gloo instead.
      replica.comm =
          o.comm == "auto" && parallel::HasRepeatedCudaDevice(replica_devices[i])
              ? "gloo"
              : o.comm;
      replica.startup_timeout = absl::Seconds(o.startup_timeout_s);
      // Workers log at the server's level, so --log_level=trace shows every
      // step on every rank.
      replica.extra_worker_args = {
          absl::StrCat("--log_level=", o.log_level),
          absl::StrCat("--async_ulysses=",
                       o.async_ulysses ? "true" : "false"),
          absl::StrCat("--sp_compression=", o.sp_compression),
          absl::StrCat("--sp_compression_exact_steps=",
                       o.sp_compression_exact_steps),
          absl::StrCat("--text_cache_mb=", o.text_cache_mb)};
      if (models.random_weights) {
        replica.extra_worker_args.push_back("--allow_random_weights");
      }
      p.owned_replicas.push_back(
          std::make_unique<scheduler::LocalReplica>(replica));
      p.replicas.push_back(p.owned_replicas.back().get());
    }
    if (!models.model_dir.empty()) {
      spdlog::info("[server] serving the model in --model_dir={}",
                   models.model_dir);
    }
    for (const common::ModelSpec& m : models.models) {
      spdlog::info("[server] serving model '{}' from {}{}", m.name,
                   m.dir.empty() ? "untrained random weights" : m.dir,
                   m.name == models.default_model ? " (default)" : "");
    }
    const char* blas_core = std::getenv("OPENBLAS_CORETYPE");
    spdlog::info(
        "[server] dserve {} starting {} replica(s) of {} rank(s) each ({}), "
        "worker {}, OPENBLAS_CORETYPE={}",
        kVersion, p.mesh.dp, p.replica_world_size,
        parallel::FormatMeshSpec(parallel::ReplicaDegrees(p.mesh)),
        worker_binary,
        blas_core == nullptr ? "(unset: OpenBLAS decides)" : blas_core);
    spdlog::info("[server] devices --devices={}: {} (dtype {}, comm {})",
                 o.devices,
                 [&] {
                   std::vector<parallel::Device> all;
                   for (const auto& r : replica_devices) {
                     all.insert(all.end(), r.begin(), r.end());
                   }
                   return parallel::FormatDevices(all);
                 }(),
                 o.dtype.empty() ? "device default" : o.dtype, o.comm);
  } else {
    if (static_cast<int>(o.replica_handles.size()) != p.mesh.dp) {
      return absl::InvalidArgumentError(absl::StrCat(
          "replica_handles has ", o.replica_handles.size(),
          " replica(s) but the mesh has dp=", p.mesh.dp, "; they must agree"));
    }
    p.replicas = o.replica_handles;
  }

  scheduler::SchedulerOptions scheduler_options;
  scheduler_options.queue_capacity = o.queue_capacity;
  scheduler_options.max_queue_age = o.max_queue_age_s > 0
                                        ? absl::Seconds(o.max_queue_age_s)
                                        : absl::InfiniteDuration();
  scheduler_options.max_batch = o.max_batch;
  scheduler_options.batch_wait = absl::Milliseconds(o.batch_wait_ms);
  p.scheduler = std::make_unique<scheduler::Scheduler>(scheduler_options,
                                                       p.replicas, &p.clock);
  scheduler::JobTableOptions job_table_options;
  job_table_options.max_result_bytes =
      static_cast<int64_t>(o.result_store_mb) << 20;
  p.jobs = std::make_unique<scheduler::JobTable>(job_table_options, &p.clock);
  ValidationLimits limits;
  limits.max_prompt_chars = o.max_prompt_chars;
  limits.max_steps = o.max_steps;
  limits.max_frames = o.max_frames;
  limits.max_pixels = o.max_pixels;
  limits.max_job_seconds = o.max_job_seconds;
  limits.default_step_cache =
      common::StepCachePreset(o.step_cache, "--step_cache")
          .value_or(common::StepCacheSettings{});
  if (limits.default_step_cache.threshold > 0) {
    limits.default_step_cache_preset = o.step_cache;
  }
  p.validator = std::make_unique<RequestValidator>(
      limits, [&p] { return p.seeds.Next(); });

  DiffusionServiceOptions service_options;
  service_options.mesh = parallel::MeshLayoutFromDegrees(p.mesh);
  service_options.version = kVersion;
  service_options.instance_id = o.instance_id;
  service_options.default_job_deadline =
      o.default_job_deadline_s > 0 ? absl::Seconds(o.default_job_deadline_s)
                                   : absl::InfiniteDuration();
  service_options.expose_internals = o.expose_internals;
  service_options.max_streams_per_job = o.max_watchers_per_job;
  service_options.stream_write_timeout =
      o.watcher_write_timeout_s > 0 ? absl::Seconds(o.watcher_write_timeout_s)
                                    : absl::InfiniteDuration();
  service_options.on_rejected = [&p](const absl::Status& status) {
    p.serving_metrics.RecordRejected(status);
  };
  if (!o.auth_token_file.empty()) {
    ASSIGN_OR_RETURN(service_options.auth_token,
                     ReadTokenFile(o.auth_token_file, "auth_token_file"));
  }
  if (!service_options.auth_token.empty() && o.tls_cert.empty()) {
    // Anyone on the path can read the token and replay it.
    spdlog::warn(
        "[server] --auth_token_file is set but the gRPC API is plaintext "
        "(no --tls_cert/--tls_key): the bearer token crosses the network "
        "unencrypted; serve TLS here or behind a TLS-terminating proxy");
  }
  if (!service_options.auth_token.empty() && o.http_port != 0) {
    spdlog::warn(
        "[server] --auth_token_file is set and the HTTP API (--http_port) "
        "is plaintext HTTP: its bearer token crosses the network "
        "unencrypted; put it behind a TLS-terminating proxy");
  }
  const TlsFiles tls_files{o.tls_cert, o.tls_key, o.tls_client_ca};
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   MakeServerCredentials(tls_files));
  service_options.on_admitted =
      [&p](const std::shared_ptr<scheduler::Job>& job) {
        p.serving_metrics.WatchJob(job);
      };
  p.serving_metrics.AddCollectors(p.replicas, p.jobs.get());
  if (o.metrics_port > 0) {
    ASSIGN_OR_RETURN(p.metrics_http,
                     MetricsHttpServer::Start(o.metrics_host, o.metrics_port,
                                              &p.metrics_registry));
    spdlog::info("[server] metrics on http://{}:{}/metrics", o.metrics_host,
                 p.metrics_http->port());
  }
  p.service = std::make_unique<DiffusionService>(
      service_options, p.scheduler.get(), p.jobs.get(), p.validator.get(),
      &p.clock);

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Our own health service, not gRPC's default: that one says SERVING for
  // "" from BuildAndStart until the first SetServing(false). Readiness is
  // NOT_SERVING from the first answer; liveness SERVING.
  p.health = std::make_unique<HealthService>(std::map<std::string, bool>{
      {"", false}, {kServiceName, false}, {kLivenessService, true}});
  builder.SetOption(
      std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(
          std::make_unique<HealthStatusForwarder>(p.health.get())));
  builder.RegisterService(p.health.get());
  const std::string address = absl::StrCat(
      o.host.find(':') != std::string::npos ? absl::StrCat("[", o.host, "]")
                                            : o.host,
      ":", o.port);
  builder.AddListeningPort(address, credentials, &bound_port_);
  builder.SetMaxReceiveMessageSize(o.max_message_bytes);
  if (o.max_connection_age_s > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               o.max_connection_age_s * 1000);
    // Calls open when the age is reached run to their end (a video job may
    // stream for an hour); only new calls move to a new connection.
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, INT_MAX);
  }
  builder.RegisterService(p.service.get());
  p.grpc_server = builder.BuildAndStart();
  if (p.grpc_server == nullptr || bound_port_ == 0) {
    p.grpc_server.reset();
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address, " (port in use or bad --host)"));
  }
  SetServing(false);
  spdlog::info("[server] listening on {}:{}", o.host, bound_port_);
  if (o.http_port != 0) {
    HttpApiOptions http;
    http.host = o.host;
    http.port = o.http_port < 0 ? 0 : o.http_port;
    http.max_body_bytes = static_cast<size_t>(o.max_message_bytes);
    http.auth_token = service_options.auth_token;
    scheduler::Scheduler* scheduler = p.scheduler.get();
    http.ready = [scheduler] { return scheduler->AnyReplicaServing(); };
    ASSIGN_OR_RETURN(p.http_api,
                     HttpApi::Start(std::move(http), p.service.get(),
                                    p.jobs.get(), p.scheduler.get()));
    spdlog::info("[server] OpenAI-compatible HTTP API on http://{}:{}/v1",
                 o.host, p.http_api->port());
  }

  for (auto& replica : p.owned_replicas) replica->Start();
  p.scheduler->Start();
  health_thread_ = std::thread([this] { FollowReplicaHealth(); });
  return absl::OkStatus();
}

Server::~Server() {
  if (parts_->grpc_server != nullptr) Drain(absl::ZeroDuration());
}

int Server::http_port() const {
  return parts_->http_api == nullptr ? 0 : parts_->http_api->port();
}

int Server::metrics_port() const {
  return parts_->metrics_http == nullptr ? 0 : parts_->metrics_http->port();
}

const parallel::MeshDegrees& Server::mesh() const { return parts_->mesh; }

void Server::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health =
      parts_->grpc_server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  health->SetServingStatus(kServiceName, serving);
  // Liveness ("is the process answering?") stays SERVING through replica
  // restarts and drains, so Kubernetes never kills a pod that is only busy
  // or draining; readiness ("" and the service name) is what flips.
  health->SetServingStatus(kLivenessService, true);
}

void Server::FollowReplicaHealth() {
  bool serving = false;
  while (!drain_started_.WaitForNotificationWithTimeout(
      absl::Milliseconds(200))) {
    const bool now_serving = parts_->scheduler->AnyReplicaServing();
    if (now_serving != serving) {
      serving = now_serving;
      SetServing(serving);
      spdlog::info("[server] health: {}", serving ? "SERVING" : "NOT_SERVING");
    }
  }
}

void Server::Drain(absl::Duration grace) {
  absl::MutexLock lock(&drain_mu_);
  if (drained_.HasBeenNotified()) return;
  Parts& p = *parts_;
  drain_started_.Notify();
  // Joined first, so it cannot report SERVING after the line below.
  if (health_thread_.joinable()) health_thread_.join();
  SetServing(false);
  p.service->StartDraining();
  p.scheduler->StopAdmitting(absl::UnavailableError(
      "server is draining (it received a shutdown signal) and accepts no new "
      "jobs; retry against another instance"));
  // GOAWAY on every connection now: clients open their next call on a new
  // connection (behind a Service: another pod) instead of being refused
  // here for the whole drain; calls already open (Generate and WatchJob
  // streams of the jobs still running) go on. The listener closes too. The
  // deadline is only a backstop: the drain ends the shutdown itself below.
  std::thread goaway([&p, grace] {
    p.grpc_server->Shutdown(std::chrono::system_clock::now() +
                            absl::ToChronoSeconds(grace) +
                            std::chrono::seconds(30));
  });
  const int64_t grace_s = absl::ToInt64Seconds(grace);
  spdlog::info("[server] waiting up to {} s for {} queued and running job(s)",
               grace_s, p.scheduler->queue_depth());
  if (!p.scheduler->WaitUntilIdle(grace)) {
    const absl::Status reason = absl::CancelledError(absl::StrCat(
        "the server shut down and the job did not finish within the ",
        grace_s, " s drain period (--grace_period_s); submit it again"));
    spdlog::warn("[server] grace period over; cancelling what is left");
    p.scheduler->CancelAll(reason);
    if (!p.scheduler->WaitUntilIdle(absl::Seconds(10))) {
      spdlog::warn("[server] some replicas did not stop their plans in 10 s");
    }
  }
  p.scheduler->Stop(absl::UnavailableError("the server shut down"));
  // Every job has ended, so every stream can finish; give them up to 5 s
  // to flush, then shut down with no grace: a graceful Shutdown would also
  // wait (until its deadline) for idle client connections to close after
  // the GOAWAY, which made SIGTERM take 5 s whenever a client held a
  // channel.
  const absl::Time flush_until = absl::Now() + absl::Seconds(5);
  while (p.service->open_streams() > 0 && absl::Now() < flush_until) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (p.service->open_streams() > 0) {
    spdlog::warn("[server] {} stream(s) still open after 5 s; cutting them",
                 p.service->open_streams());
  }
  // Idle connections that ignored the GOAWAY would hold Shutdown until its
  // deadline; every job has ended, so cut them.
  grpc_server_cancel_all_calls(p.grpc_server->c_server());
  goaway.join();
  p.http_api.reset();  // Every job has ended: no image request still waits.
  std::vector<std::thread> stoppers;
  for (scheduler::ReplicaHandle* replica : p.replicas) {
    stoppers.emplace_back([replica] { replica->Shutdown(absl::Seconds(5)); });
  }
  for (std::thread& t : stoppers) t.join();
  drained_.Notify();
}

void Server::Wait() { drained_.WaitForNotification(); }

}  // namespace dserve::server
