// dserve_server: the frontend process.
//
//   dserve_server --port=50051 --replicas=2 [--mesh=dp=2,cfg=2] ...
//
// Flags -> Server::Options -> Server::BuildAndStart (server/server.h: the
// replicas, scheduler and gRPC service) -> wait for SIGTERM/SIGINT ->
// Server::Drain(--grace_period_s) -> exit 0.
//
// Exit codes: 0 after a drain; 1 when the server cannot start (bad flags,
// port in use, a model whose directory is missing, or a replica whose
// workers refused to start: a model that does not load).

#include <signal.h>
#include <string.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/blas_kernels.h"
#include "common/program_flags.h"
#include "parallel/sp_compression.h"
#include "server/server.h"
#include "server/signal_watcher.h"
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
          "One model directory (dserve, Wan release or diffusers layout), "
          "served under the name in its config; empty = see --model. Not "
          "combinable with --model or --model_repository.");
ABSL_FLAG(std::string, model, "",
          "NAME=DIR: serve the model in DIR as NAME; repeat the flag for "
          "several models (every replica loads every one). The bare name "
          "dserve-tiny-shapes is the built-in model. No --model, "
          "--model_repository or --model_dir = the built-in model alone.");
ABSL_FLAG(std::string, model_repository, "",
          "Folder whose every subfolder is a model named after it (hidden "
          "entries and lost+found skipped); adds to --model.");
ABSL_FLAG(std::string, default_model, "",
          "Model a request with an empty model runs; empty = the first "
          "--model, else the repository's first subfolder by name.");
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
          "Serve Prometheus metrics over HTTP at :<port>/metrics on "
          "--metrics_host (0 = off).");
ABSL_FLAG(std::string, metrics_host, "127.0.0.1",
          "Address the metrics port listens on: loopback by default; "
          "0.0.0.0 where a scraper outside the pod or host needs it "
          "(deploy/k8s sets it). Request bodies are refused (413).");
ABSL_FLAG(bool, expose_internals, false,
          "GetServerInfo also reports each replica's leader address and "
          "worker pids (debugging; off: they are internal).");
ABSL_FLAG(int, http_port, 0,
          "Serve the OpenAI-compatible HTTP API (/v1/images/generations, "
          "/v1/videos, /v1/models, /health, /ready) on --host at this port; "
          "0 = off, -1 = any free port (logged).");
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
ABSL_FLAG(int, result_store_mb, 1024,
          "Total MiB of finished jobs' results the server keeps for "
          "GetJob/WatchJob; the oldest are evicted first (then NOT_FOUND "
          "\"expired\"); 0 = no budget.");
ABSL_FLAG(int, max_watchers_per_job, 16,
          "Most open Generate/WatchJob streams per job; one more gets "
          "RESOURCE_EXHAUSTED; 0 = no limit.");
ABSL_FLAG(int, watcher_write_timeout_s, 30,
          "A stream whose client has not read a pending message for this "
          "many seconds is ended with RESOURCE_EXHAUSTED; 0 = never.");
ABSL_FLAG(int, max_prompt_chars, 2048, "Longest prompt, in characters.");
ABSL_FLAG(int, max_steps, 200, "Most denoising steps per request.");
ABSL_FLAG(int, max_frames, 0,
          "Most frames per request (0 = the model's limit).");
ABSL_FLAG(int64_t, max_pixels, 0,
          "Most output pixels (width*height*num_frames) per request (0 = the "
          "model's size limits).");
ABSL_FLAG(double, max_job_seconds, -1,
          "Most estimated replica seconds per job (the replica measures the "
          "model's cost per token at start; ListModels cost); a job over it "
          "gets INVALID_ARGUMENT naming the estimate and the budget. -1 = "
          "the model's default (600 s), 0 = no budget.");
ABSL_FLAG(std::string, step_cache, "off",
          "Step-cache preset (off, slow, medium, fast) of requests that set "
          "no step_cache; a request's own step_cache wins. More reuse = "
          "fewer DiT computes per image at some fidelity (README \"Step "
          "cache\").");
ABSL_FLAG(int, default_job_deadline_s, 3600,
          "Deadline of a job whose client set none (SubmitJob, the HTTP "
          "API, a Generate without a gRPC deadline), in seconds from "
          "admission; it then ends DEADLINE_EXCEEDED, queued or running "
          "(stopped at the next denoising step). 0 = none.");
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
ABSL_FLAG(std::string, devices, "cpu",
          "Device of every rank, rank order: cpu, auto (every visible GPU, "
          "else cpu) or cuda:0,cuda:1,... (rank k of replica r on entry "
          "r*W+k; repeats share a device).");
ABSL_FLAG(std::string, dtype, "",
          "Worker compute dtype: bf16, fp16, fp32; empty = bf16 on CUDA, "
          "fp32 on CPU.");
ABSL_FLAG(std::string, comm, "auto",
          "Mesh-group backend: auto (NCCL for CUDA ranks where built, else "
          "Gloo), nccl, gloo (CUDA tensors staged through the host).");
ABSL_FLAG(bool, async_ulysses, false,
          "Ulysses replicas start the q, k and v all-to-alls together "
          "instead of one after another (passed to every worker as "
          "--async_ulysses). Same images either way.");
ABSL_FLAG(std::string, sp_compression, "off",
          "Sequence-parallel traffic of ulysses/ring replicas: off (exact), "
          "int8 or int4 (all-to-alls and ring K/V blocks sent as int8 / "
          "packed int4 residuals against the previous denoising step after "
          "1 exact step; measured 3.5x / 6x fewer bytes per step, images "
          "within PSNR 35 dB of exact). Passed to every worker as "
          "--sp_compression.");
ABSL_FLAG(int, sp_compression_exact_steps,
          dserve::parallel::kDefaultSpExactSteps,
          "With --sp_compression: steps at the start of each plan sent "
          "exactly before residuals start (1 to 10000; more exact steps, "
          "closer to the exact picture, fewer bytes saved). Passed to every "
          "worker.");
ABSL_FLAG(int, text_cache_mb, 256,
          "MiB of prompt embeddings each replica's text-encoding rank (rank "
          "0, the only one that loads the text encoder) keeps in an LRU, on "
          "its device; repeated prompts skip the encoder and the models' "
          "default negative prompts stay cached. 0 = off. Passed to every "
          "worker as --text_cache_mb.");
ABSL_FLAG(int, startup_timeout_s, 120,
          "How long a replica may take to start (rendezvous + model load).");
ABSL_FLAG(int, max_connection_age_s, 0,
          "Send a client connection a GOAWAY once it is this old, so its "
          "next calls open a new connection (behind a load balancer: "
          "possibly to another pod); calls already open run to their end. "
          "0 = never. The drain sends a GOAWAY at its start regardless.");
ABSL_FLAG(bool, allow_random_weights, false,
          "With --model_dir empty and the shipped default model's weights "
          "not found, serve untrained random weights instead of refusing to "
          "start (tests and demos only).");
ABSL_FLAG(std::string, log_level, "info",
          "trace, debug, info, warn, error (trace logs every step).");

namespace dserve::server {
namespace {

// `model_flags`: every --model value (absl keeps only the last).
Server::Options OptionsFromFlags(const std::string& argv0,
                                 std::vector<std::string> model_flags) {
  Server::Options o;
  o.host = absl::GetFlag(FLAGS_host);
  o.port = absl::GetFlag(FLAGS_port);
  o.replicas = absl::GetFlag(FLAGS_replicas);
  o.mesh = absl::GetFlag(FLAGS_mesh);
  o.model_dir = absl::GetFlag(FLAGS_model_dir);
  o.models = std::move(model_flags);
  o.model_repository = absl::GetFlag(FLAGS_model_repository);
  o.default_model = absl::GetFlag(FLAGS_default_model);
  o.queue_capacity = absl::GetFlag(FLAGS_queue_capacity);
  o.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  o.tls_key = absl::GetFlag(FLAGS_tls_key);
  o.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  o.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  o.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  o.metrics_host = absl::GetFlag(FLAGS_metrics_host);
  o.expose_internals = absl::GetFlag(FLAGS_expose_internals);
  o.http_port = absl::GetFlag(FLAGS_http_port);
  o.max_queue_age_s = absl::GetFlag(FLAGS_max_queue_age_s);
  o.max_batch = absl::GetFlag(FLAGS_max_batch);
  o.batch_wait_ms = absl::GetFlag(FLAGS_batch_wait_ms);
  o.result_store_mb = absl::GetFlag(FLAGS_result_store_mb);
  o.max_watchers_per_job = absl::GetFlag(FLAGS_max_watchers_per_job);
  o.watcher_write_timeout_s = absl::GetFlag(FLAGS_watcher_write_timeout_s);
  o.max_prompt_chars = absl::GetFlag(FLAGS_max_prompt_chars);
  o.max_steps = absl::GetFlag(FLAGS_max_steps);
  o.max_frames = absl::GetFlag(FLAGS_max_frames);
  o.max_pixels = absl::GetFlag(FLAGS_max_pixels);
  o.max_job_seconds = absl::GetFlag(FLAGS_max_job_seconds);
  o.step_cache = absl::GetFlag(FLAGS_step_cache);
  o.default_job_deadline_s = absl::GetFlag(FLAGS_default_job_deadline_s);
  o.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  o.grace_period_s = absl::GetFlag(FLAGS_grace_period_s);
  o.worker_binary = absl::GetFlag(FLAGS_worker_binary);
  o.argv0 = argv0;
  o.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  o.devices = absl::GetFlag(FLAGS_devices);
  o.dtype = absl::GetFlag(FLAGS_dtype);
  o.comm = absl::GetFlag(FLAGS_comm);
  o.async_ulysses = absl::GetFlag(FLAGS_async_ulysses);
  o.sp_compression = absl::GetFlag(FLAGS_sp_compression);
  o.sp_compression_exact_steps =
      absl::GetFlag(FLAGS_sp_compression_exact_steps);
  o.text_cache_mb = absl::GetFlag(FLAGS_text_cache_mb);
  o.startup_timeout_s = absl::GetFlag(FLAGS_startup_timeout_s);
  o.log_level = absl::GetFlag(FLAGS_log_level);
  o.max_connection_age_s = absl::GetFlag(FLAGS_max_connection_age_s);
  o.allow_random_weights = absl::GetFlag(FLAGS_allow_random_weights);
  return o;
}

int Run(const std::string& argv0, std::vector<std::string> model_flags) {
  Server::Options options = OptionsFromFlags(argv0, std::move(model_flags));
  if (absl::StatusOr<parallel::SpCompression> mode =
          parallel::ParseSpCompression(options.sp_compression);
      !mode.ok()) {
    spdlog::error("[server] --{}", std::string(mode.status().message()));
    return 1;
  }
  // The handlers go in before the server starts: a SIGTERM that arrives
  // while (or just after) it binds its port must drain it, not kill it with
  // the default action (issue 16, finding 8). The drain then starts as soon
  // as BuildAndStart returns.
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
  // A replica whose workers refused to start (a model that does not load)
  // ends the server: exit 1 with the reason, never a server that looks up
  // but can serve nothing.
  absl::Mutex start_failure_mu;
  std::optional<absl::Status> start_failure;
  absl::Notification start_failed;
  options.on_start_failure = [&](const absl::Status& s) {
    {
      absl::MutexLock lock(&start_failure_mu);
      if (start_failure.has_value()) return;
      start_failure = s;
    }
    start_failed.Notify();
  };
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::BuildAndStart(options);
  if (!server.ok()) {
    spdlog::error("[server] {}", server.status().ToString());
    return 1;
  }
  while (!drain_requested.WaitForNotificationWithTimeout(
      absl::Milliseconds(100))) {
    if (start_failed.HasBeenNotified()) {
      absl::MutexLock lock(&start_failure_mu);
      spdlog::error("[server] cannot start: {}", start_failure->ToString());
      break;
    }
  }
  if (start_failed.HasBeenNotified() && !drain_requested.HasBeenNotified()) {
    (*server)->Drain(absl::ZeroDuration());
    (*server)->Wait();
    signals->reset();
    return 1;
  }
  (*server)->Drain(absl::Seconds(options.grace_period_s));
  (*server)->Wait();
  signals->reset();
  spdlog::info("[server] stopped");
  return 0;
}

}  // namespace
}  // namespace dserve::server

int main(int argc, char** argv) {
  dserve::common::ParseProgramFlags(
      argc, argv, "dserve_server",
      "dserve_server --port=50051 --replicas=N [--mesh=dp=N,cfg=..] ...: "
      "serves dserve.v1.DiffusionService over gRPC");
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
  return dserve::server::Run(
      argv[0], dserve::common::RepeatedFlagValues(argc, argv, "model"));
}
