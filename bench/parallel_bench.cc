// parallel_bench: for each parallel mode, runs a few denoising steps of the
// default model (random weights of DefaultModelConfig, 64x64, CFG 4.0) in N
// Gloo processes on this machine and prints, per denoising step:
//   * bytes communicated, summed over every rank, as measured by the
//     Communicators' CommStats, next to the analytic formula (AnalyticBytes
//     below; the README's "Parallelism" section derives it);
//   * the mean step time of rank 0 and its ratio to the 1-process step time,
//     measured in the same run.
//
//   bazel run //bench:parallel_bench -- [--steps=3] [--size=64]
//       [--ulysses=both|sync|async]
//
// Modes with ulysses > 1 are timed once per Ulysses scatter (--ulysses):
// "sync" (three blocking all-to-alls) and "async" (q, k, v in flight
// together, ParallelDiTOptions::async_ulysses); bytes are the same.
//
// On a CPU-only machine the N processes share its cores (at::set_num_threads
// is 1 per rank), so the time ratio shows the communication and
// orchestration overhead, not the speed-up a GPU per rank would give.
//
// Rank processes are this binary re-executed with --rank/--world/--port/
// --mode; each reports "bytes ms" under "result/<rank>" in the parent's
// TCPStore.

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/blas_kernels.h"
#include "parallel/device_mesh.h"
#include "parallel/mesh_communicators.h"
#include "parallel/sequence_shard.h"
#include "worker/models/model_config.h"
#include "worker/models/parallel_context.h"
#include "worker/models/parallel_dit.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

ABSL_FLAG(int, steps, 3, "Timed denoising steps per mode (after 1 warm-up).");
ABSL_FLAG(int, size, 64, "Image width and height in pixels.");
ABSL_FLAG(std::string, modes,
          "cfg=2;ulysses=2;ulysses=4;ring=2;ring=4;ring=2,ulysses=2;pp=2;"
          "pp=3;tp=2;tp=4;cfg=2,ulysses=2;cfg=2,pp=2;cfg=2,ring=2,ulysses=2",
          "Mesh specs to measure, ';'-separated.");
ABSL_FLAG(std::string, ulysses, "both",
          "Ulysses scatter to time where ulysses > 1: sync, async or both.");
ABSL_FLAG(bool, async_ulysses, false,
          "Internal: ParallelDiTOptions::async_ulysses of a rank process.");
ABSL_FLAG(int, rank, -1, "Internal: rank of a re-executed rank process.");
ABSL_FLAG(int, world, 0, "Internal.");
ABSL_FLAG(int, port, 0, "Internal.");
ABSL_FLAG(std::string, mode, "", "Internal: mesh spec of a rank process.");

namespace dserve {
namespace {

constexpr uint64_t kWeightSeed = 20240601;
constexpr float kGuidance = 4.0f;

models::GenerationSpec BenchSpec(int size, int steps) {
  models::GenerationSpec spec;
  spec.width = size;
  spec.height = size;
  spec.num_steps = steps + 1;
  spec.flow_shift = 3.0f;
  spec.items = {{"a red circle on the left", "", 7, kGuidance}};
  return spec;
}

// Bytes all ranks put on the wire in one denoising step (one guided item,
// CFG on), with the Communicator counting rules of communicator.h.
int64_t AnalyticBytes(const parallel::MeshDegrees& m,
                      const models::PipelineConfig& pc, int size) {
  const models::DiTConfig& c = pc.dit;
  const int64_t f4 = 4;  // fp32
  const int64_t s = int64_t{size / c.patch[1]} * (size / c.patch[2]);
  const int64_t sp = int64_t{m.ring} * m.ulysses;
  const int64_t sp_len = parallel::PaddedLength(s, sp);
  const int64_t rows = m.cfg == 2 ? 1 : 2;  // model rows per cfg branch
  const int64_t d = c.dim, l = c.num_layers, t = m.tp, p = m.pp;
  const int64_t per_token = int64_t{c.out_channels} * c.patch_volume();
  const int64_t u = m.ulysses, r = m.ring;
  int64_t branch = 0;
  // Ulysses: q, k, v scatter + out gather, (u-1)/u of each input, per layer.
  branch += l * 4 * (u - 1) * rows * sp_len * d * f4 / u;
  // Ring: K and V blocks (fp32) and the uint8 mask, r-1 rotations a layer.
  branch += l * (r - 1) * rows * sp_len * (2 * d * f4 + u);
  // Head tokens all-gathered over the SP group (on every stage).
  branch += p * (sp - 1) * rows * sp_len * per_token * f4;
  // PP: x sent over p-1 stage boundaries; head tokens broadcast by the last.
  branch += (p - 1) * t * rows * sp_len * (d + per_token) * f4;
  // TP: 5 all-reduces a layer: 3 of [rows, S, dim] (self o, cross o,
  // ffn.2) and 2 of the q|k sums of squares (self: S + S, cross: S + L).
  branch += l * 2 * (t - 1) * f4 *
            (3 * rows * s * d + 3 * rows * s + rows * c.text_len);
  int64_t total = m.cfg * branch;
  // CFG: every rank all-gathers its branch's prediction [1, C, 1, H, W].
  const int64_t world = int64_t{m.cfg} * sp * p * t;
  total += world * (m.cfg - 1) * c.out_channels * size * size * f4;
  return total;
}

models::PipelineConfig BenchConfig() { return models::DefaultModelConfig(); }

// One rank: build mesh + model, run 1 warm-up and N timed steps.
int RunRank(int rank, int world, int port, const std::string& mode) {
  at::set_num_threads(1);
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(port);
  opts.isServer = false;
  opts.waitWorkers = false;
  opts.timeout = std::chrono::seconds(120);
  auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", opts);
  const models::PipelineConfig config = BenchConfig();
  auto pipeline = models::Pipeline::Create(
      config, models::RandomWeights(config, kWeightSeed));
  if (!pipeline.ok()) {
    std::fprintf(stderr, "%s\n", pipeline.status().ToString().c_str());
    return 1;
  }
  std::optional<parallel::MeshCommunicators> comms;
  std::unique_ptr<models::ParallelDiT> dit;
  models::GuidedPredictor predictor;
  if (world > 1) {
    auto degrees = parallel::ParseMeshSpec(mode);
    std::vector<int> devices(world);
    for (int i = 0; i < world; ++i) devices[i] = i;
    auto mesh = parallel::DeviceMesh::Create(*degrees, devices);
    if (!mesh.ok()) {
      std::fprintf(stderr, "%s\n", mesh.status().ToString().c_str());
      return 1;
    }
    auto made = parallel::MeshCommunicators::Create(
        *mesh, rank, store,
        parallel::GlooCommunicatorFactory(std::chrono::seconds(120)));
    if (!made.ok()) {
      std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
      return 1;
    }
    comms = *std::move(made);
    auto pdit = models::ParallelDiT::Create(
        (*pipeline)->dit(), (*pipeline)->weights(), config.coordinate_planes,
        models::ParallelContext{*mesh, &*comms},
        models::ParallelDiTOptions{absl::GetFlag(FLAGS_async_ulysses)});
    if (!pdit.ok()) {
      std::fprintf(stderr, "%s\n", pdit.status().ToString().c_str());
      return 1;
    }
    dit = *std::move(pdit);
    predictor = [&](const at::Tensor& x, const at::Tensor& ts,
                    const at::Tensor& cond, const at::Tensor& uncond,
                    const std::vector<float>& g,
                    models::StepCacheStep* cache) {
      return dit->GuidedPrediction(x, ts, cond, uncond, g, cache);
    };
  }
  const int steps = absl::GetFlag(FLAGS_steps);
  auto state =
      (*pipeline)->Prepare(BenchSpec(absl::GetFlag(FLAGS_size), steps));
  if (!state.ok()) {
    std::fprintf(stderr, "%s\n", state.status().ToString().c_str());
    return 1;
  }
  int64_t bytes = 0;
  double ms = 0;
  for (int i = 0; i <= steps; ++i) {
    if (comms.has_value()) comms->ResetStats();
    const absl::Time start = absl::Now();
    if (absl::Status s = (*pipeline)->Step(*state, predictor); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    if (i == 0) continue;  // warm-up
    ms += absl::ToDoubleMilliseconds(absl::Now() - start);
    if (comms.has_value()) bytes += comms->TotalStats().total_bytes();
  }
  const std::string result =
      absl::StrCat(bytes / steps, " ", ms / steps);
  store->set(absl::StrCat("result/", rank),
             std::vector<uint8_t>(result.begin(), result.end()));
  return 0;
}

struct ModeResult {
  int64_t bytes = 0;  // per step, all ranks
  double ms = 0;      // rank 0 mean step time
  bool ok = false;
};

ModeResult RunMode(const std::string& mode, int world, bool async_ulysses) {
  c10d::TCPStoreOptions opts;
  opts.port = 0;
  opts.isServer = true;
  opts.waitWorkers = false;
  opts.timeout = std::chrono::seconds(120);
  auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", opts);
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> args = {
        "/proc/self/exe",
        absl::StrCat("--rank=", r),
        absl::StrCat("--world=", world),
        absl::StrCat("--port=", store->getPort()),
        absl::StrCat("--mode=", mode),
        absl::StrCat("--async_ulysses=", async_ulysses ? "true" : "false"),
        absl::StrCat("--steps=", absl::GetFlag(FLAGS_steps)),
        absl::StrCat("--size=", absl::GetFlag(FLAGS_size))};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
      execv("/proc/self/exe", argv.data());
      _exit(127);
    }
    pids.push_back(pid);
  }
  ModeResult out;
  out.ok = true;
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    out.ok = out.ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  if (!out.ok) return out;
  for (int r = 0; r < world; ++r) {
    std::vector<uint8_t> v = store->get(absl::StrCat("result/", r));
    std::vector<std::string> parts =
        absl::StrSplit(std::string(v.begin(), v.end()), ' ');
    out.bytes += std::stoll(parts[0]);
    if (r == 0) out.ms = std::stod(parts[1]);
  }
  return out;
}

int Main() {
  const int size = absl::GetFlag(FLAGS_size);
  const models::PipelineConfig config = BenchConfig();
  const std::string ulysses = absl::GetFlag(FLAGS_ulysses);
  if (ulysses != "sync" && ulysses != "async" && ulysses != "both") {
    std::fprintf(stderr,
                 "--ulysses='%s' is invalid; use sync, async or both\n",
                 ulysses.c_str());
    return 1;
  }
  const ModeResult base = RunMode("", 1, false);
  if (!base.ok) {
    std::fprintf(stderr, "1-process baseline failed\n");
    return 1;
  }
  std::printf(
      "default model (dim %d, %d layers, %d heads), %dx%d, CFG %.1f, "
      "%d timed steps; 1 process: %.1f ms/step\n",
      config.dit.dim, config.dit.num_layers, config.dit.num_heads, size, size,
      kGuidance, absl::GetFlag(FLAGS_steps), base.ms);
  std::printf("| mesh | ranks | bytes/step measured | bytes/step formula | "
              "step ms | time vs 1 process |\n|---|---|---|---|---|---|\n");
  for (absl::string_view spec_view :
       absl::StrSplit(absl::GetFlag(FLAGS_modes), ';')) {
    const std::string spec(spec_view);
    auto degrees = parallel::ParseMeshSpec(spec);
    if (!degrees.ok()) {
      std::fprintf(stderr, "%s\n", degrees.status().ToString().c_str());
      return 1;
    }
    const int world = static_cast<int>(parallel::WorldSize(*degrees));
    std::vector<bool> variants = {false};
    if (degrees->ulysses > 1) {
      if (ulysses == "async") variants = {true};
      if (ulysses == "both") variants = {false, true};
    }
    for (bool async_ulysses : variants) {
      const std::string label =
          degrees->ulysses > 1
              ? absl::StrCat(spec, async_ulysses ? " (async)" : " (sync)")
              : spec;
      const ModeResult r = RunMode(spec, world, async_ulysses);
      if (!r.ok) {
        std::printf("| %s | %d | failed | | | |\n", label.c_str(), world);
        continue;
      }
      std::printf(
          "| %s | %d | %lld | %lld | %.1f | %.2fx |\n", label.c_str(), world,
          static_cast<long long>(r.bytes),
          static_cast<long long>(AnalyticBytes(*degrees, config, size)), r.ms,
          r.ms / base.ms);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace dserve

int main(int argc, char** argv) {
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_rank) >= 0) {
    const int code = dserve::RunRank(
        absl::GetFlag(FLAGS_rank), absl::GetFlag(FLAGS_world),
        absl::GetFlag(FLAGS_port), absl::GetFlag(FLAGS_mode));
    std::fflush(nullptr);
    _exit(code);
  }
  at::set_num_threads(1);
  return dserve::Main();
}
