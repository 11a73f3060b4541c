// dserve_worker: one rank of a replica (one process per GPU; CPU here).
//
//   dserve_worker --replica=I --rank=R --world=W --store=HOST:PORT
//                 --device=cpu|cuda:N [--dtype=bf16|fp16|fp32]
//                 [--comm=auto|nccl|gloo] --mesh=SPEC --threads=N
//                 (--model=NAME=DIR ... [--default_model=NAME] | --model_dir=DIR)
//                 --ready_fd=FD --leader_address=HOST:PORT
//
//   dserve_worker --probe_devices [--ready_fd=FD]   prints "cuda_devices N"
//                 (or "cuda_devices 0 <why>") and exits: the server's probe.
//
// Device: SelectDevice (worker/device_runtime.h) runs first, before any
// tensor exists: a CUDA rank makes its GPU current and a pool stream its
// current stream, so the model's kernels and NCCL run in order on that
// stream; the pipeline places its weights there once in --dtype.
//
// Data path: flags → device → rendezvous (TCPStore hosted by rank 0, world Gloo
// communicator) → model → rank 0: ReplicaLeader gRPC service + Serve loop;
// other ranks: FollowLeader. Rank 0 reports "store <port>\n" and then
// "leader <port>\n" on --ready_fd.
//
// Exit codes: 0 after SIGTERM/SIGINT or the leader's SHUTDOWN; 1 when the
// replica broke (a peer died, a collective timed out, the parent exited);
// 2 for bad flags or a model that does not load (rank 0 then writes
// "error <model, file and reason>" on --ready_fd first, which the server
// reports as why the replica did not start).

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/blas_kernels.h"
#include "common/program_flags.h"
#include "common/served_models.h"
#include "common/replica_secret.h"
#include "grpcpp/grpcpp.h"
#include "parallel/activation_codec.h"
#include "parallel/device_mesh.h"
#include "parallel/devices.h"
#include "parallel/mesh_communicators.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "worker/cost_calibration.h"
#include "worker/device_runtime.h"
#include "worker/follower_loop.h"
#include "worker/leader_auth.h"
#include "worker/mesh_backend.h"
#include "worker/models/dit_share.h"
#include "worker/models/model_config.h"
#include "worker/models/parallel_context.h"
#include "worker/models/parallel_dit.h"
#include "worker/models/prompt_broadcast.h"
#include "worker/models/text_embedding_cache.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"
#include "worker/models/wan_pipeline.h"
#include "worker/models/default_model/weights_path.h"
#include "worker/rank_loop.h"
#include "worker/rendezvous.h"
#include "worker/replica_leader.h"
#include "worker/worker_options.h"
#include <ATen/Parallel.h>

ABSL_FLAG(int, replica, 0, "Data-parallel replica index (logs, status).");
ABSL_FLAG(int, rank, 0, "Rank of this process in the replica, 0..world-1.");
ABSL_FLAG(int, world, 1, "Processes in the replica.");
ABSL_FLAG(std::string, store, "127.0.0.1:0",
          "TCPStore HOST:PORT; rank 0 hosts it (port 0 = ephemeral). "
          "Ignored with --store_file.");
ABSL_FLAG(std::string, store_file, "",
          "Path of the replica's c10d FileStore, the same on every rank "
          "(what dserve_server passes: no listening port); empty = --store.");
ABSL_FLAG(std::string, device, "cpu", "Device of this rank: cpu or cuda:N.");
ABSL_FLAG(std::string, dtype, "",
          "DiT compute dtype: bf16, fp16, fp32; empty = bf16 on CUDA, fp32 "
          "on CPU (norms, modulation and residual stay fp32).");
ABSL_FLAG(std::string, comm, "auto",
          "Mesh-group backend: auto (NCCL for CUDA ranks where built), nccl, "
          "gloo (CUDA tensors staged through the host).");
ABSL_FLAG(bool, probe_devices, false,
          "Print 'cuda_devices N [why none]' on --ready_fd (or stdout) and "
          "exit.");
ABSL_FLAG(std::string, mesh, "",
          "Parallel layout of the replica, e.g. cfg=2,ulysses=2 (omitted "
          "keys are 1).");
ABSL_FLAG(std::string, model_dir, "",
          "Directory with config.json + model.safetensors; empty = built-in "
          "default model with deterministic random weights.");
ABSL_FLAG(std::string, model, "",
          "NAME=DIR: serve the model in DIR as NAME; repeat for several "
          "models (every rank loads every one). DIR empty = the built-in "
          "model under NAME. Exclusive with --model_dir.");
ABSL_FLAG(std::string, default_model, "",
          "With --model: the model a plan with an empty model runs; empty = "
          "the first --model.");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");
ABSL_FLAG(int, ready_fd, -1,
          "Rank 0 writes 'store <port>' and 'leader <port>' lines here.");
ABSL_FLAG(std::string, leader_address, "127.0.0.1:0",
          "Where rank 0 serves ReplicaLeader (port 0 = ephemeral).");
ABSL_FLAG(int, collective_timeout_ms, 30000,
          "A collective waiting longer than this breaks the replica.");
ABSL_FLAG(int, rendezvous_timeout_ms, 120000,
          "Longest wait for every rank to check in.");
ABSL_FLAG(int, heartbeat_ms, 1000,
          "Idle leader broadcasts a heartbeat this often.");
ABSL_FLAG(int, text_cache_mb, 0,
          "LRU cache of prompt embeddings on the rank that runs the text "
          "encoder (rank 0), in MiB of that rank's device memory; the "
          "models' default negative prompts stay cached. 0 = off.");
ABSL_FLAG(bool, async_ulysses, false,
          "Ulysses: start the q, k and v all-to-alls together and wait for "
          "all three (false: one blocking all-to-all after another). Same "
          "output either way.");
ABSL_FLAG(std::string, sp_compression, "off",
          "Sequence-parallel traffic: off (exact), int8 or int4 (Ulysses "
          "all-to-alls and Ring K/V blocks sent as int8 / packed int4 "
          "residuals against the previous denoising step, exact for the "
          "first step of a plan). No effect without ulysses or ring > 1.");
ABSL_FLAG(int, sp_compression_exact_steps,
          dserve::parallel::kDefaultSpExactSteps,
          "With --sp_compression: how many steps at the start of each plan "
          "are sent exactly before residuals start (1 to 10000; the first "
          "step has no reference).");
ABSL_FLAG(bool, allow_random_weights, false,
          "With --model_dir empty and the shipped default model not found, "
          "load the default model with deterministic random weights instead "
          "of exiting (the server passes it for --allow_random_weights).");
ABSL_FLAG(std::string, log_level, "info",
          "spdlog level: trace, debug, info, warn, error.");

namespace dserve::worker {
namespace {

// Seed of the built-in default model's weights; every rank (and every
// replica) must draw the same ones.
constexpr uint64_t kDefaultWeightSeed = 20240601;

// Set from the signal handler; polled by the loops at every heartbeat or
// step boundary (no self-pipe needed: nothing blocks for longer).
std::atomic<bool> g_stop_requested{false};

void OnStopSignal(int /*signo*/) { g_stop_requested.store(true); }

void InstallSignalHandlers() {
  struct sigaction action = {};
  action.sa_handler = &OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  // A spawner that stopped reading --ready_fd must not kill us with SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
}

// Leaves without running destructors: a Gloo context whose peers died can
// block in teardown, and a worker must never hang on its way out.
[[noreturn]] void Exit(int code) {
  spdlog::shutdown();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

absl::Status WriteReadyLine(int fd, const std::string& line) {
  if (fd < 0) return absl::OkStatus();
  const std::string text = line + "\n";
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat(
          "writing '", line, "' to --ready_fd=", fd, ": ", strerror(errno)));
    }
    written += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// `model_flags`: every --model value (absl keeps only the last).
absl::StatusOr<WorkerOptions> OptionsFromFlags(
    const std::vector<std::string>& model_flags) {
  WorkerOptions o;
  o.replica = absl::GetFlag(FLAGS_replica);
  o.rank = absl::GetFlag(FLAGS_rank);
  o.world = absl::GetFlag(FLAGS_world);
  absl::StatusOr<HostPort> store =
      ParseHostPort(absl::GetFlag(FLAGS_store), "store");
  if (!store.ok()) return store.status();
  o.store = *store;
  o.store_file = absl::GetFlag(FLAGS_store_file);
  o.device = absl::GetFlag(FLAGS_device);
  o.dtype = absl::GetFlag(FLAGS_dtype);
  o.comm = absl::GetFlag(FLAGS_comm);
  o.probe_devices = absl::GetFlag(FLAGS_probe_devices);
  o.mesh = absl::GetFlag(FLAGS_mesh);
  o.model_dir = absl::GetFlag(FLAGS_model_dir);
  for (const std::string& text : model_flags) {
    absl::StatusOr<common::ModelSpec> spec = common::ParseWorkerModelFlag(text);
    if (!spec.ok()) return spec.status();
    o.models.push_back(*std::move(spec));
  }
  o.default_model = absl::GetFlag(FLAGS_default_model);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.ready_fd = absl::GetFlag(FLAGS_ready_fd);
  absl::StatusOr<HostPort> leader =
      ParseHostPort(absl::GetFlag(FLAGS_leader_address), "leader_address");
  if (!leader.ok()) return leader.status();
  o.leader_address = *leader;
  o.collective_timeout =
      std::chrono::milliseconds(absl::GetFlag(FLAGS_collective_timeout_ms));
  o.rendezvous_timeout =
      std::chrono::milliseconds(absl::GetFlag(FLAGS_rendezvous_timeout_ms));
  o.heartbeat_interval =
      std::chrono::milliseconds(absl::GetFlag(FLAGS_heartbeat_ms));
  o.async_ulysses = absl::GetFlag(FLAGS_async_ulysses);
  o.sp_compression = absl::GetFlag(FLAGS_sp_compression);
  o.sp_exact_steps = absl::GetFlag(FLAGS_sp_compression_exact_steps);
  if (absl::StatusOr<parallel::SpCompression> mode =
          parallel::ParseSpCompression(o.sp_compression);
      !mode.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", mode.status().message()));
  }
  o.text_cache_mb = absl::GetFlag(FLAGS_text_cache_mb);
  if (absl::Status s = ValidateWorkerOptions(o); !s.ok()) return s;
  return o;
}

// The replica's layout (dp is the scheduler's business: a replica is dp=1).
// Checked before the rendezvous so that a wrong --mesh fails at once.
absl::StatusOr<parallel::DeviceMesh> ResolveMesh(const std::string& spec,
                                                 int world) {
  absl::StatusOr<parallel::MeshDegrees> degrees = parallel::ParseMeshSpec(spec);
  if (!degrees.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--mesh='", spec, "': ", degrees.status().message()));
  }
  *degrees = parallel::ReplicaDegrees(*degrees);
  const int64_t needed = parallel::WorldSize(*degrees);
  if (needed != world) {
    return absl::InvalidArgumentError(
        absl::StrCat("--mesh='", spec, "' needs ", needed,
                     " ranks per replica but --world=", world, ": device num ",
                     world, " and world size ", needed, " not match"));
  }
  return parallel::DeviceMesh::OverRanks(*degrees);
}

// `spec.dir` empty = the built-in model with deterministic random weights
// (main() already swapped in its shipped weights' directory when found);
// `spec.name` empty = the name in the model's config.
absl::StatusOr<std::unique_ptr<models::Pipeline>> LoadModel(
    const common::ModelSpec& spec, const models::PipelineOptions& placement) {
  if (!spec.dir.empty()) {
    // dserve's own layout, a Wan2.1 release or a diffusers directory.
    return models::LoadModelDirectory(spec.dir, placement, spec.name);
  }
  models::PipelineConfig config = models::DefaultModelConfig();
  if (!spec.name.empty()) config.name = spec.name;
  models::WeightMap weights = models::RandomWeights(config, kDefaultWeightSeed);
  return models::Pipeline::Create(std::move(config), std::move(weights),
                                  placement);
}

// Returns once every rank of the replica has loaded its models: each sets
// its key in the replica's store and polls for the others' (as Rendezvous
// does), up to `timeout`. Not a collective on purpose: rank 0 alone also
// loads the text encoder (models/prompt_broadcast.h; umT5-XXL is 11 GB), so
// the other ranks may wait far longer than --collective_timeout_ms, which
// bounds their first wait for the leader's command.
absl::Status WaitUntilEveryRankLoaded(c10d::Store& store, int rank, int world,
                                      std::chrono::milliseconds timeout,
                                      const std::function<bool()>& abort) {
  auto key = [](int r) { return absl::StrCat("dserve/models_loaded/", r); };
  std::vector<std::string> keys;
  for (int r = 0; r < world; ++r) keys.push_back(key(r));
  try {
    store.set(key(rank), std::vector<uint8_t>{'1'});
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!store.check(keys)) {
      if (abort()) {
        return absl::AbortedError("stop requested or parent gone while "
                                  "waiting for the other ranks' models");
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "not every one of the ", world, " ranks loaded its models within "
            "--rendezvous_timeout_ms=", timeout.count()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("waiting for the other ranks' models: ", e.what()));
  }
  return absl::OkStatus();
}

// A start-up failure the server should report as the reason its replica
// did not start: logged, and rank 0 also writes "error <message>" on
// --ready_fd (scheduler/replica.cc reads it instead of "leader <port>").
// Returns the exit code 2.
int FailStart(const WorkerOptions& options, const std::string& message) {
  spdlog::error("[job -] {}", message);
  if (options.rank == 0) {
    std::string line = absl::StrCat("error ", message);
    std::replace(line.begin(), line.end(), '\n', ' ');
    (void)WriteReadyLine(options.ready_fd, line);
  }
  return 2;
}

// `replica_secret`: what every ReplicaLeader call must carry (empty = none;
// see common/replica_secret.h).
int Main(const WorkerOptions& options, const std::string& replica_secret) {
  const pid_t parent = ::getppid();
  auto parent_alive = [parent] { return ::getppid() == parent; };
  auto stop_requested = [] { return g_stop_requested.load(); };

  absl::StatusOr<parallel::DeviceMesh> mesh =
      ResolveMesh(options.mesh, options.world);
  if (!mesh.ok()) {
    spdlog::error("[job -] {}", mesh.status().ToString());
    return 2;
  }

  // The device first: nothing may be allocated before it is current.
  absl::StatusOr<parallel::Device> wanted = parallel::ParseDevice(options.device);
  absl::StatusOr<at::Device> device =
      wanted.ok() ? SelectDevice(*wanted)
                  : absl::StatusOr<at::Device>(wanted.status());
  absl::StatusOr<at::ScalarType> dtype = ParseDtype(EffectiveDtype(options));
  absl::StatusOr<std::string> comm_backend =
      device.ok() ? ResolveCommBackend(options.comm, device->is_cuda(),
                                       BuiltWithNccl())
                  : absl::StatusOr<std::string>(device.status());
  for (const absl::Status& s :
       {device.status(), dtype.status(), comm_backend.status()}) {
    if (!s.ok()) {
      spdlog::error("[job -] {}", s.ToString());
      return 2;
    }
  }
  spdlog::info("[job -] device {}, dtype {}, mesh groups over {}",
               device->str(), DtypeName(*dtype),
               options.world > 1 ? *comm_backend : std::string("(none)"));

  RendezvousOptions rv;
  rv.rank = options.rank;
  rv.world = options.world;
  rv.store = options.store;
  rv.store_file = options.store_file;
  rv.timeout = options.rendezvous_timeout;
  rv.collective_timeout = options.collective_timeout;
  rv.should_abort = [&] { return stop_requested() || !parent_alive(); };
  absl::StatusOr<Replica> replica = Rendezvous(rv, [&options](int port) {
    spdlog::info("[job -] TCPStore listening on port {}", port);
    return WriteReadyLine(options.ready_fd, absl::StrCat("store ", port));
  });
  if (!replica.ok()) {
    spdlog::error("[job -] rendezvous failed: {}", replica.status().ToString());
    return 1;
  }
  spdlog::info("[job -] rendezvous done: {} ranks, backend {}", options.world,
               replica->world->backend_name());

  // Every rank builds its mesh groups (same order on every rank) before
  // the models: the replica's text encoder runs on rank 0 only and its
  // embeddings reach the other ranks over the world group
  // (models/prompt_broadcast.h). A 1-rank replica has no groups.
  std::optional<parallel::MeshCommunicators> comms;
  if (options.world > 1) {
    absl::StatusOr<parallel::CommunicatorFactory> factory =
        MeshCommunicatorFactory(*comm_backend, *device,
                                options.collective_timeout);
    if (!factory.ok()) {
      spdlog::error("[job -] mesh groups: {}", factory.status().ToString());
      return 2;
    }
    absl::StatusOr<parallel::MeshCommunicators> made =
        parallel::MeshCommunicators::Create(*mesh, options.rank,
                                            replica->store, *factory);
    if (!made.ok()) {
      spdlog::error("[job -] mesh groups: {}", made.status().ToString());
      return 1;
    }
    comms = *std::move(made);
  }
  models::PromptSharing prompt_sharing;
  if (comms.has_value()) prompt_sharing.group = &comms->world();
  prompt_sharing.encoding_rank = 0;
  if (options.rank == 0 && options.text_cache_mb > 0) {
    // One budget for every served model (the key names the model).
    prompt_sharing.cache = std::make_shared<models::TextEmbeddingCache>(
        static_cast<int64_t>(options.text_cache_mb) << 20);
  }

  // This rank materialises only its share of each DiT: its PP stage's
  // blocks, its TP column/row slices (models/dit_share.h).
  absl::StatusOr<models::DiTShare> dit_share =
      models::DiTShareForRank(*mesh, options.rank);
  if (!dit_share.ok()) {
    return FailStart(options, dit_share.status().ToString());
  }
  // Every served model, in the order given; every rank holds them all.
  std::vector<std::unique_ptr<models::Pipeline>> pipelines;
  for (const common::ModelSpec& spec : options.models) {
    const absl::Time load_start = absl::Now();
    const std::string what =
        spec.name.empty()
            ? absl::StrCat("model from --model_dir=", spec.dir)
            : absl::StrCat("model '", spec.name, "' (",
                           spec.dir.empty() ? std::string("built-in")
                                            : spec.dir,
                           ")");
    models::PipelineOptions placement{*device, *dtype};
    placement.prompts = prompt_sharing;
    placement.dit_share = *dit_share;
    absl::StatusOr<std::unique_ptr<models::Pipeline>> pipeline =
        LoadModel(spec, placement);
    if (!pipeline.ok()) {
      return FailStart(options, absl::StrCat(what, " did not load: ",
                                             pipeline.status().ToString()));
    }
    if (absl::Status s =
            models::ValidateMeshForModel(*mesh, (*pipeline)->config().dit);
        !s.ok()) {
      return FailStart(options, absl::StrCat("--mesh does not fit ", what,
                                             ": ", s.ToString()));
    }
    spdlog::info("[job -] model '{}' loaded in {}; DiT {}: {} bytes here",
                 (*pipeline)->config().name,
                 absl::FormatDuration(absl::Now() - load_start),
                 models::DiTShareString(*dit_share),
                 (*pipeline)->dit_shard().weight_bytes());
    pipelines.push_back(*std::move(pipeline));
  }
  const models::Pipeline* default_pipeline = pipelines.front().get();
  for (const auto& p : pipelines) {
    if (p->config().name == options.default_model) default_pipeline = p.get();
  }
  // The default model (COST's calibration and the one-model paths use it).
  const models::Pipeline& model = *default_pipeline;
  const std::string mesh_spec = parallel::FormatMeshSpec(mesh->degrees());
  spdlog::info("[job -] {} model(s) loaded, default '{}', mesh {}",
               pipelines.size(), model.config().name, mesh_spec);
  if (options.world > 1) {
    if (absl::Status s = WaitUntilEveryRankLoaded(
            *replica->store, options.rank, options.world,
            options.rendezvous_timeout,
            [&] { return stop_requested() || !parent_alive(); });
        !s.ok()) {
      spdlog::error("[job -] {}", s.ToString());
      return 1;
    }
  }

  // Each model's DiT runs through the mesh groups; a 1-rank replica keeps
  // the plain local path.
  std::vector<std::unique_ptr<models::ParallelDiT>> parallel_dits;
  std::vector<LoopModel> loop_models;
  for (const auto& p : pipelines) loop_models.push_back(LoopModel{p.get(), {}});
  if (options.world > 1) {
    // One ParallelDiT per model over the same mesh groups: plans run one
    // at a time, so the models take turns on them.
    models::ParallelDiTOptions dit_options;
    dit_options.async_ulysses = options.async_ulysses;
    // Checked by ParseOptions.
    dit_options.sp_compression =
        parallel::ParseSpCompression(options.sp_compression)
            .value_or(parallel::SpCompression::kOff);
    dit_options.sp_exact_steps = options.sp_exact_steps;
    for (LoopModel& served : loop_models) {
      const models::Pipeline& p = *served.pipeline;
      absl::StatusOr<std::unique_ptr<models::ParallelDiT>> pdit =
          models::ParallelDiT::Create(p, models::ParallelContext{*mesh, &*comms},
                                      dit_options);
      if (!pdit.ok()) {
        return FailStart(options,
                         absl::StrCat("parallel model '", p.config().name,
                                      "': ", pdit.status().ToString()));
      }
      parallel_dits.push_back(*std::move(pdit));
      served.predictor = [dit = parallel_dits.back().get()](
                             const at::Tensor& x, const at::Tensor& t,
                             const at::Tensor& cond, const at::Tensor& uncond,
                             const std::vector<float>& guidance,
                             models::StepCacheStep* cache) {
        return dit->GuidedPrediction(x, t, cond, uncond, guidance, cache);
      };
    }
    spdlog::info("[job -] mesh groups ready; attention {}{}{}",
                 mesh->attention_strategy(),
                 mesh->degree(parallel::MeshDim::kUlysses) > 1
                     ? (options.async_ulysses ? " (async ulysses)"
                                              : " (sync ulysses)")
                     : "",
                 options.sp_compression == "off"
                     ? ""
                     : absl::StrCat("; sp traffic ", options.sp_compression));
  }
  // This rank's device line for GetStatus, published in the replica's
  // store once the model is loaded (its memory then counts the weights);
  // rank 0 answers GetStatus from them and its own live figures.
  const std::string comm_name =
      options.world == 1 ? std::string()
      : (*comm_backend == "gloo" && device->is_cuda()) ? "gloo+host_staging"
                                                        : *comm_backend;
  auto describe_rank = [dev = *device, dtype_name = DtypeName(*dtype),
                        comm_name](int rank) {
    dserve::v1::RankDevice d;
    d.set_rank(rank);
    d.set_device(dev.str());
    d.set_dtype(dtype_name);
    d.set_comm(comm_name);
    const DeviceMemory m = QueryDeviceMemory(dev);
    d.set_gpu_memory_available(m.available);
    d.set_gpu_memory_allocated_bytes(m.allocated_bytes);
    d.set_gpu_memory_reserved_bytes(m.reserved_bytes);
    d.set_gpu_memory_total_bytes(m.total_bytes);
    return d;
  };
  auto rank_device_key = [](int rank) {
    return absl::StrCat("dserve/rank_device/", rank);
  };
  if (options.rank != 0) {
    const std::string bytes = describe_rank(options.rank).SerializeAsString();
    try {
      replica->store->set(rank_device_key(options.rank),
                          std::vector<uint8_t>(bytes.begin(), bytes.end()));
    } catch (const std::exception& e) {
      spdlog::warn("[job -] could not publish this rank's device: {}",
                   e.what());
    }
  }
  RankLoop loop(std::move(loop_models), model.config().name, *replica->world);
  if (options.rank != 0) {
    FollowerOptions follower;
    follower.stop_requested = stop_requested;
    follower.parent_alive = parent_alive;
    absl::Status s = FollowLeader(loop, *replica->world, follower);
    if (!s.ok()) {
      spdlog::error("[job -] leaving: {}", s.ToString());
      return 1;
    }
    spdlog::info("[job -] stopped");
    return 0;
  }

  ReplicaLeaderOptions leader_options;
  leader_options.replica = options.replica;
  leader_options.mesh = mesh->degrees();
  leader_options.pids = replica->pids;
  leader_options.heartbeat_interval =
      absl::FromChrono(options.heartbeat_interval);
  leader_options.stop_requested = stop_requested;
  leader_options.parent_alive = parent_alive;
  leader_options.rank_devices =
      [store = replica->store, world = options.world, describe_rank,
       rank_device_key, mu = std::make_shared<std::mutex>()] {
        std::vector<dserve::v1::RankDevice> ranks = {describe_rank(0)};
        const std::lock_guard<std::mutex> lock(*mu);
        for (int r = 1; r < world; ++r) {
          dserve::v1::RankDevice d;
          d.set_rank(r);
          try {
            if (store->check({rank_device_key(r)})) {
              const std::vector<uint8_t> v = store->get(rank_device_key(r));
              d.ParseFromArray(v.data(), static_cast<int>(v.size()));
            }
          } catch (const std::exception&) {
            // Reported without a device; the store is the rendezvous one.
          }
          ranks.push_back(std::move(d));
        }
        return ranks;
      };
  // Before "leader <port>": the frontend reads the costs with the models.
  // Every served model is timed, each for its own admission estimate.
  CostCalibrationOptions calibration;
  calibration.guided_evaluations =
      mesh->degree(parallel::MeshDim::kCfg) > 1 ? 1 : 2;
  for (const LoopModel& served : loop.models()) {
    const models::PipelineConfig& config = served.pipeline->config();
    if (absl::StatusOr<dserve::v1::CostModel> cost =
            CalibrateCost(config, loop, *replica->world, calibration);
        cost.ok()) {
      leader_options.costs[config.name] = *std::move(cost);
    } else if (!loop.healthy()) {
      spdlog::error("[job -] leaving: {}", cost.status().ToString());
      return 1;
    } else {
      spdlog::warn("[job -] model '{}' has no cost model (its jobs are "
                   "admitted without a cost estimate): {}",
                   config.name, cost.status().ToString());
    }
  }
  ReplicaLeader leader(loop, *replica->world, leader_options);

  grpc::ServerBuilder builder;
  int leader_port = 0;
  const std::string address =
      absl::StrCat(options.leader_address.host.find(':') == std::string::npos
                       ? options.leader_address.host
                       : absl::StrCat("[", options.leader_address.host, "]"),
                   ":", options.leader_address.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(),
                           &leader_port);
  // Every call must carry the replica's secret (issue 16, finding 6).
  std::unique_ptr<SecretCheckedLeader> checked_leader;
  if (!replica_secret.empty()) {
    checked_leader =
        std::make_unique<SecretCheckedLeader>(&leader, replica_secret);
    builder.RegisterService(checked_leader.get());
  } else {
    spdlog::warn(
        "[job -] no {} in the environment: ReplicaLeader on {} accepts any "
        "caller that reaches it (dserve_server always sets one)",
        common::kReplicaSecretEnv, address);
    builder.RegisterService(&leader);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || leader_port == 0) {
    spdlog::error("[job -] cannot serve ReplicaLeader on {}", address);
    return 1;
  }
  spdlog::info("[job -] ReplicaLeader on port {}", leader_port);
  if (absl::Status s = WriteReadyLine(options.ready_fd,
                                      absl::StrCat("leader ", leader_port));
      !s.ok()) {
    spdlog::error("[job -] {}", s.ToString());
    return 1;
  }
  if (options.ready_fd >= 0) ::close(options.ready_fd);

  absl::Status served = leader.Serve();
  // Streams still open get their final status from the closed queue; give
  // them a moment to reach the wire before the process goes.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (!served.ok()) {
    spdlog::error("[job -] leaving: {}", served.ToString());
    return 1;
  }
  spdlog::info("[job -] stopped");
  return 0;
}

}  // namespace
}  // namespace dserve::worker

int main(int argc, char** argv) {
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  dserve::common::ParseProgramFlags(
      argc, argv, "dserve_worker",
      "One rank of a dserve replica; started by dserve_server.");
  // After the re-exec above (which must still see it), before any thread
  // could read the environment.
  const std::string replica_secret = dserve::common::TakeSecretFromEnvironment(
      dserve::common::kReplicaSecretEnv);
  dserve::worker::InstallSignalHandlers();

  // Before anything logs: every line carries role, replica and rank (job ids
  // go in the message).
  const std::string pattern =
      absl::StrCat("%Y-%m-%dT%H:%M:%S.%e %^%L%$ [worker] [replica ",
                   absl::GetFlag(FLAGS_replica), "] [rank ",
                   absl::GetFlag(FLAGS_rank), "] %v");
  // stdout may be a pipe nobody reads; logs go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("worker"));
  spdlog::set_pattern(pattern);
  const std::string level_name = absl::GetFlag(FLAGS_log_level);
  const spdlog::level::level_enum level = spdlog::level::from_str(level_name);
  // from_str answers "off" for names it does not know.
  if (level == spdlog::level::off && level_name != "off") {
    spdlog::error(
        "[job -] --log_level='{}' is not a level; allowed trace, "
        "debug, info, warn, error, critical, off",
        level_name);
    dserve::worker::Exit(2);
  }
  spdlog::set_level(level);

  if (absl::GetFlag(FLAGS_probe_devices)) {
    const std::string line =
        dserve::worker::FormatProbeLine(dserve::worker::ProbeDevices());
    const int fd = absl::GetFlag(FLAGS_ready_fd);
    if (fd >= 0) {
      absl::Status s = dserve::worker::WriteReadyLine(fd, line);
      if (!s.ok()) spdlog::error("[job -] {}", s.ToString());
    } else {
      std::printf("%s\n", line.c_str());
    }
    dserve::worker::Exit(0);
  }

  absl::StatusOr<dserve::worker::WorkerOptions> options =
      dserve::worker::OptionsFromFlags(
          dserve::common::RepeatedFlagValues(argc, argv, "model"));
  if (!options.ok()) {
    spdlog::error("[job -] {}", options.status().ToString());
    dserve::worker::Exit(2);
  }
  at::set_num_threads(options->threads);
  // From here on `models` lists every model; the --model_dir form is one
  // entry without a name (the model keeps the name in its config).
  if (options->models.empty()) {
    options->models.push_back({"", options->model_dir, ""});
    options->model_dir.clear();
  }
  for (dserve::common::ModelSpec& spec : options->models) {
    if (!spec.dir.empty()) continue;
    // The shipped default model travels in the runfiles of the binary (or of
    // the server that spawned it); without them the deterministic random
    // weights keep the worker usable, but draw noise-like pictures.
    absl::StatusOr<std::string> dir =
        dserve::default_model::DefaultModelDirectory(argv[0]);
    if (dir.ok()) {
      spec.dir = *dir;
    } else if (!absl::GetFlag(FLAGS_allow_random_weights)) {
      // Never a silent fallback: a worker without its weights would draw
      // noise while health says SERVING.
      dserve::worker::Exit(dserve::worker::FailStart(
          *options,
          absl::StrCat(dir.status().ToString(),
                       "; pass --model_dir=DIR, or --allow_random_weights to "
                       "serve untrained random weights on purpose")));
    } else {
      spdlog::warn(
          "[job -] shipped default model not found ({}); serving untrained "
          "random weights (seed {}) as '{}'. Pass --model_dir to choose a "
          "model.",
          dir.status().ToString(), dserve::worker::kDefaultWeightSeed,
          spec.name.empty() ? "the default model" : spec.name);
    }
  }
  dserve::worker::Exit(dserve::worker::Main(*options, replica_secret));
}
