#ifndef DSERVE_WORKER_WORKER_OPTIONS_H_
#define DSERVE_WORKER_WORKER_OPTIONS_H_

// The command line of one dserve_worker process, as a validated value.
//
// The process protocol is fixed between the server (which spawns ranks) and
// the worker: see worker_main.cc for the flag list. worker_main.cc reads the
// absl flags into a WorkerOptions and calls ValidateWorkerOptions before
// anything else happens, so every later stage can trust the values.
//
// Plain value type: copyable, no thread-safety concerns, nothing blocks.

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/served_models.h"
#include "parallel/sp_compression.h"

namespace dserve::worker {

struct HostPort {
  std::string host;
  // 0 = pick an ephemeral port (only meaningful where this process listens).
  int port = 0;
};

// Parses "HOST:PORT" (IPv6 as "[::1]:PORT"). `field` names the flag in errors.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view text,
                                       absl::string_view field);

struct WorkerOptions {
  // Data-parallel replica index, for logs and GetStatus.
  int replica = 0;
  // This process's rank in the replica, 0..world-1. Rank 0 is the leader.
  int rank = 0;
  // Processes in the replica.
  int world = 1;
  // The c10d TCPStore. Rank 0 hosts it (port 0 = ephemeral); others connect.
  // Ignored when store_file is set. c10d 1.13's TCPStore listens on every
  // interface whatever the host, so dserve_server never uses it.
  HostPort store;
  // The replica's c10d FileStore (every rank opens the same path): no
  // listening socket at all. dserve_server puts it in a fresh directory only
  // its user can enter (issue 16, finding 6). Empty = use `store`.
  std::string store_file;
  // "cpu" or "cuda:N" (parallel::ParseDevice). CUDA needs a CUDA LibTorch;
  // a CPU-only build fails at start-up with FAILED_PRECONDITION.
  std::string device = "cpu";
  // Compute precision of the DiT: "bf16", "fp16", "fp32", or "" = the
  // device's default (bf16 on CUDA, fp32 on CPU). Norms, modulation and the
  // residual stream stay fp32 whatever it is (models::DiTNumerics).
  std::string dtype;
  // Backend of the mesh groups: "auto" (NCCL for CUDA ranks when this build
  // has it, else Gloo), "nccl" (CUDA ranks only, --config=cuda builds) or
  // "gloo" (CUDA tensors staged through the host, so several ranks may
  // share one GPU).
  std::string comm = "auto";
  // Print what devices this process can use ("cuda_devices N [why none]")
  // on --ready_fd (or stdout) and exit; the server's start-up probe.
  bool probe_devices = false;
  // Mesh spec, e.g. "cfg=2,ulysses=2"; empty = every degree 1.
  std::string mesh;
  // Model directory (config.json + model.safetensors); empty = the built-in
  // default config with deterministic random weights.
  std::string model_dir;
  // Several models (--model=NAME=DIR, repeatable; DIR empty = the built-in
  // model under NAME); exclusive with model_dir. Every rank loads every one.
  std::vector<common::ModelSpec> models;
  // The model a plan with an empty model runs; "" = the first of `models`.
  std::string default_model;
  // Intra-op threads of LibTorch in this process.
  int threads = 1;
  // File descriptor to which rank 0 reports "store <port>\n" and
  // "leader <port>\n"; -1 = none.
  int ready_fd = -1;
  // Where rank 0 serves dserve.internal.v1.ReplicaLeader (port 0 = ephemeral).
  HostPort leader_address{"127.0.0.1", 0};
  // Longest a collective may wait for a peer before the replica is declared
  // broken. Idle heartbeats keep healthy ranks well inside it.
  std::chrono::milliseconds collective_timeout{30000};
  // Longest the rendezvous (store connect + every rank checking in) may take.
  std::chrono::milliseconds rendezvous_timeout{120000};
  // How often the idle leader broadcasts a heartbeat command.
  std::chrono::milliseconds heartbeat_interval{1000};
  // Ulysses scatters q, k and v with three exchanges in flight at once
  // (models::ParallelDiTOptions::async_ulysses). Same output either way.
  bool async_ulysses = false;
  // --sp_compression: "off" (exact), "int8" or "int4" (the Ulysses
  // all-to-alls and Ring K/V hops sent as int8 / packed int4 residuals
  // against the previous step, parallel/activation_codec.h;
  // models::ParallelDiTOptions::sp_compression).
  // Checked when the worker parses its flags.
  std::string sp_compression = "off";
  // --sp_compression_exact_steps: the first steps of every plan are sent
  // exactly before compression starts (at least 1: the first step has no
  // reference; models::ParallelDiTOptions::sp_exact_steps).
  int sp_exact_steps = parallel::kDefaultSpExactSteps;
  // MiB of prompt embeddings rank 0 (the replica's text-encoding rank)
  // keeps in an LRU (models/text_embedding_cache.h); 0 = no cache.
  int text_cache_mb = 0;
};

// INVALID_ARGUMENT naming the flag, the value and the allowed range.
absl::Status ValidateWorkerOptions(const WorkerOptions& options);

// The dtype a worker uses: `options.dtype`, or the device's default when
// empty ("bf16" on CUDA, "fp32" on CPU). Call after ValidateWorkerOptions.
std::string EffectiveDtype(const WorkerOptions& options);

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_WORKER_OPTIONS_H_
