#ifndef DSERVE_SERVER_SERVER_H_
#define DSERVE_SERVER_SERVER_H_

// Server: the frontend process as one object (after TF Serving's
// model_servers/server.h). BuildAndStart wires, in data-path order:
//
//   options -> mesh -> replicas (fork/exec of dserve_worker ranks, started
//   in the background) -> scheduler loop -> job table -> validator ->
//   gRPC DiffusionService (+ health, reflection) [+ metrics over HTTP]
//
// and returns with the port bound and health NOT_SERVING; health follows
// the replicas (SERVING once one is READY or BUSY) until Drain starts.
// Drain: health NOT_SERVING, new work UNAVAILABLE, queued and running jobs
// get `grace` to finish, the rest are cancelled, then the gRPC server and
// the replicas stop.
//
// Ownership: owns the replicas it spawns, the scheduler (and its thread),
// the job table, the gRPC server, the metrics HTTP server and one thread
// that keeps health in step with the replicas. Injected replicas
// (Options::replicas) are not owned; they must outlive the Server and be
// started by the caller.
// Thread-safety: Drain and Wait may be called from any thread, at the same
// time. Blocking: BuildAndStart returns once the port is bound (replicas
// start in the background); Drain blocks up to `grace` plus the stop
// timeouts; Wait blocks until a Drain finished. The destructor drains with
// no grace if nobody drained.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "parallel/device_mesh.h"
#include "parallel/sp_compression.h"
#include "proto/dserve/v1/diffusion_service.pb.h"
#include "scheduler/replica_handle.h"

namespace dserve::server {

class Server {
 public:
  // Every setting of dserve_server; field names are the flag names (errors
  // name them as --<field>=<value>), defaults are the flags' defaults.
  struct Options {
    // Where the gRPC API listens; port 0 = any free port (see port()).
    std::string host = "0.0.0.0";
    int port = 50051;
    // Data-parallel replicas; 0 = dp from `mesh` (default 1).
    int replicas = 0;
    // Parallel layout, e.g. "dp=2,cfg=2" (parallel::ParseMeshSpec).
    std::string mesh;
    // One model, under the name in its config (the single-model form);
    // exclusive with the three below. All empty = the built-in model.
    std::string model_dir;
    // Several models (common/served_models.h): every --model value
    // ("NAME=DIR", or the built-in model's bare name), --model_repository
    // (each subfolder a model named after it) and --default_model (empty =
    // the first --model, else the repository's first subfolder). Every
    // replica loads every model; a request names one (empty = the default).
    std::vector<std::string> models;
    std::string model_repository;
    std::string default_model;
    // Called once, from a replica's thread, when a spawned replica's first
    // start fails because its workers refused to start
    // (FAILED_PRECONDITION naming the model and the reason: a model that
    // does not load, a mesh that does not fit it). dserve_server then exits
    // with status 1; unset = the replica just stays FAILED.
    std::function<void(const absl::Status&)> on_start_failure;
    int queue_capacity = 64;
    // PEM files; empty = plaintext (see tls_credentials.h).
    std::string tls_cert;
    std::string tls_key;
    std::string tls_client_ca;
    // File whose first line is the bearer token the DiffusionService
    // requires; empty = no token.
    std::string auth_token_file;
    // Prometheus metrics over HTTP on `metrics_host`:`metrics_port`; 0 =
    // off. Loopback by default: only a local scraper (or a Kubernetes pod's
    // Prometheus, with metrics_host = "0.0.0.0") should reach it.
    int metrics_port = 0;
    std::string metrics_host = "127.0.0.1";
    // GetServerInfo publishes leader addresses and worker pids (debugging
    // and the failover tests); off by default (issue 16, finding 6).
    bool expose_internals = false;
    // OpenAI-compatible HTTP API (server/http_api.h) on `host`; 0 = off,
    // -1 = any free port (see http_port()). Same queue, jobs and token.
    int http_port = 0;
    // Anti-starvation age in seconds; 0 = strict priority.
    int max_queue_age_s = 600;
    int max_batch = 1;
    int batch_wait_ms = 0;
    // Result store and streams (issue 16, finding 3): total MiB of finished
    // jobs' results kept (oldest evicted first; 0 = no budget), most open
    // Generate/WatchJob streams per job (0 = no limit), and how long a
    // stream's write may wait for a client that does not read before the
    // stream is ended with RESOURCE_EXHAUSTED (0 = forever).
    int result_store_mb = 1024;
    int max_watchers_per_job = 16;
    int watcher_write_timeout_s = 30;
    // Request limits (request_validator.h).
    int max_prompt_chars = 2048;
    int max_steps = 200;
    int max_frames = 0;
    int64_t max_pixels = 0;
    // Cost budget per job in estimated replica seconds (ModelInfo.cost);
    // -1 = the model's default (600 s for the built-in models), 0 = none.
    double max_job_seconds = -1;
    // Step-cache preset of requests that set no step_cache
    // (common/step_cache_presets.h: off, slow, medium, fast).
    std::string step_cache = "off";
    // Deadline of a job whose client set none (SubmitJob, the HTTP API, a
    // Generate without a gRPC deadline), seconds from admission; 0 = none.
    int default_job_deadline_s = 3600;
    int max_message_bytes = 4 << 20;
    // Validated here; the caller passes it to Drain.
    int grace_period_s = 30;
    // Path of dserve_worker; empty = look next to `argv0` (its runfiles, or
    // ../worker/dserve_worker).
    std::string worker_binary;
    std::string argv0;
    int worker_threads = 1;
    // Device of every rank, rank order (parallel/devices.h): "cpu",
    // "auto" (every visible GPU, else cpu) or "cuda:0,cuda:1,..."; rank k
    // of replica r runs on entry r*W+k. A GPU the worker cannot reach fails
    // BuildAndStart with FAILED_PRECONDITION before any replica spawns.
    std::string devices = "cpu";
    // Passed to every worker: --dtype ("" = bf16 on CUDA, fp32 on CPU) and
    // --comm (auto, nccl, gloo).
    std::string dtype;
    std::string comm = "auto";
    bool async_ulysses = false;
    // Passed to every worker as --sp_compression: "off" (exact), "int8" or
    // "int4" (sequence-parallel traffic as low-bit residuals, issue 15 item
    // 2; parallel::ParseSpCompression checks it).
    std::string sp_compression = "off";
    // Passed to every worker as --sp_compression_exact_steps: exact steps
    // at the start of each plan before compression starts (1 to 10000).
    int sp_compression_exact_steps = parallel::kDefaultSpExactSteps;
    // Passed to every worker as --text_cache_mb: MiB of prompt embeddings
    // each replica's text-encoding rank keeps (LRU); 0 = no cache.
    int text_cache_mb = 256;
    int startup_timeout_s = 120;
    // Passed to every worker as --log_level.
    std::string log_level = "info";
    // A client connection older than this gets a GOAWAY (its open calls
    // finish; new calls go over a new connection, which a load balancer
    // may send to another pod); 0 = connections live forever. The drain
    // sends a GOAWAY on every connection at its start regardless.
    int max_connection_age_s = 0;
    // With model_dir empty and the shipped default model's weights not
    // found, serve the default model with untrained random weights instead
    // of refusing to start (tests and demos only: pictures are noise).
    bool allow_random_weights = false;
    // Instance part of job ids (server/job_id.h); empty = random per process.
    std::string instance_id;
    // When non-empty, these replicas serve instead of dp spawned ones (tests
    // and embedders); not owned, see the class comment. Their number must
    // equal the mesh's dp.
    std::vector<scheduler::ReplicaHandle*> replica_handles;
  };

  // INVALID_ARGUMENT naming the flag for a bad setting (model flags
  // included: a malformed --model, a bad or repeated name, an unknown
  // --default_model); FAILED_PRECONDITION naming the flag and the file when
  // a model directory has no config.json/model_index.json; NOT_FOUND when
  // no dserve_worker is found; UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> BuildAndStart(
      Options options);

  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound gRPC port (the chosen one when Options::port was 0).
  int port() const { return bound_port_; }
  // The bound metrics port; 0 when metrics are off.
  int metrics_port() const;
  // The bound HTTP API port; 0 when the HTTP API is off.
  int http_port() const;
  // The deployment's layout: --mesh with --replicas as dp, validated.
  const parallel::MeshDegrees& mesh() const;

  // Stops the server gracefully (see the file comment). Blocks; a second
  // call waits for the first drain to finish.
  void Drain(absl::Duration grace);
  // Blocks until a Drain has finished.
  void Wait();

 private:
  struct Parts;  // Everything the server wires, in construction order.

  Server();
  absl::Status Start(Options options);
  // Health thread: readiness follows the replicas until the drain starts.
  void FollowReplicaHealth();
  void SetServing(bool serving);

  std::unique_ptr<Parts> parts_;
  int bound_port_ = 0;
  std::thread health_thread_;
  absl::Notification drain_started_;
  absl::Mutex drain_mu_;  // Serializes Drain.
  absl::Notification drained_;
};

}  // namespace dserve::server

#endif  // DSERVE_SERVER_SERVER_H_
