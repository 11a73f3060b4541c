// What one rank of a replica holds after loading a model: loads `--model_dir`
// as rank `--rank` of `--mesh` exactly as dserve_worker does
// (LoadModelDirectory with PipelineOptions::dit_share =
// DiTShareForRank(mesh, rank)), without a rendezvous, and prints one line:
//
//   mesh=tp=2 rank=1 share="pp stage 0 of 1, tp rank 1 of 2" text_encoder=1
//   load_s=41.2 dit_bytes=2869... dit_bytes_expected=... text_encoder_bytes=
//   ... decoder_bytes=... vm_hwm_kb=... vm_rss_kb=... rss_file_kb=...
//
// Run each rank as its own process (bench/rank_memory_bench.sh does) so that
// VmHWM (peak RSS) is that rank's alone.
//
// --text_encoder=false loads the rank as one that receives broadcast prompt
// embeddings (prompt_broadcast.h: every rank but the encoding one), so it
// reads no text-encoder weights. The group it is given only says "rank r of
// world w"; this program runs no collective (each would fail).

#include <ATen/Parallel.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "parallel/communicator.h"
#include "parallel/device_mesh.h"
#include "worker/models/dit_share.h"
#include "worker/models/pipeline.h"
#include "worker/models/wan_pipeline.h"

ABSL_FLAG(std::string, model_dir, "",
          "Model directory (dserve, Wan release or diffusers layout).");
ABSL_FLAG(std::string, mesh, "",
          "Replica mesh, e.g. tp=2 or pp=2 (\"\" = 1 rank).");
ABSL_FLAG(int, rank, 0, "Rank within the replica to load as.");
ABSL_FLAG(bool, text_encoder, true,
          "Hold the text encoder on this rank (false: receive embeddings).");
ABSL_FLAG(int, threads, 2, "Intra-op threads while converting weights.");

namespace dserve::bench {
namespace {

// "rank r of world w" for PromptSharing; no collective is ever run.
class LoadOnlyGroup : public parallel::Communicator {
 public:
  LoadOnlyGroup(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend_name() const override { return "load-only"; }
  absl::Status Broadcast(at::Tensor&, int) override { return Refuse(); }
  absl::Status AllReduceSum(at::Tensor&) override { return Refuse(); }
  absl::Status AllGather(const at::Tensor&, at::Tensor&) override {
    return Refuse();
  }
  absl::Status AllToAll(const at::Tensor&, at::Tensor&) override {
    return Refuse();
  }
  absl::Status Send(const at::Tensor&, int) override { return Refuse(); }
  absl::Status Recv(at::Tensor&, int) override { return Refuse(); }
  absl::Status Barrier() override { return Refuse(); }

 private:
  static absl::Status Refuse() {
    return absl::FailedPreconditionError(
        "rank_memory_bench only loads; it runs no collective");
  }
  int rank_;
  int size_;
};

// A "Name:   123 kB" field of /proc/self/status, in kB (-1 if absent).
int64_t StatusKb(const std::string& name) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, name + ":")) {
      return std::atoll(line.c_str() + name.size() + 1);
    }
  }
  return -1;
}

int Run() {
  const std::string dir = absl::GetFlag(FLAGS_model_dir);
  if (dir.empty()) {
    std::fprintf(stderr, "--model_dir is required\n");
    return 2;
  }
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  absl::StatusOr<parallel::MeshDegrees> degrees =
      parallel::ParseMeshSpec(absl::GetFlag(FLAGS_mesh));
  if (!degrees.ok()) {
    std::fprintf(stderr, "--mesh: %s\n", degrees.status().ToString().c_str());
    return 2;
  }
  const int world = static_cast<int>(parallel::WorldSize(*degrees));
  std::vector<int> devices(world);
  for (int i = 0; i < world; ++i) devices[i] = i;
  absl::StatusOr<parallel::DeviceMesh> mesh =
      parallel::DeviceMesh::Create(*degrees, devices);
  const int rank = absl::GetFlag(FLAGS_rank);
  absl::StatusOr<models::DiTShare> share =
      mesh.ok() ? models::DiTShareForRank(*mesh, rank)
                : absl::StatusOr<models::DiTShare>(mesh.status());
  if (!share.ok()) {
    std::fprintf(stderr, "%s\n", share.status().ToString().c_str());
    return 2;
  }
  models::PipelineOptions options;
  options.dit_share = *share;
  const bool text_encoder = absl::GetFlag(FLAGS_text_encoder);
  // Receiving: this rank in a group whose encoding rank is another one.
  LoadOnlyGroup group(text_encoder ? 0 : 1, std::max(world, 2));
  if (!text_encoder) options.prompts.group = &group;

  const int64_t rss_before = StatusKb("VmRSS");
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<models::Pipeline>> pipeline =
      models::LoadModelDirectory(dir, options);
  const double load_s = absl::ToDoubleSeconds(absl::Now() - start);
  if (!pipeline.ok()) {
    std::fprintf(stderr, "%s\n", pipeline.status().ToString().c_str());
    return 1;
  }
  const models::Pipeline& p = **pipeline;
  absl::StatusOr<models::ShareSize> expected =
      models::DiTShareSize(p.config().dit, *share, options.compute_dtype);
  const models::ComponentSizes& parts = p.component_sizes();
  std::printf(
      "mesh=%s rank=%d share=\"%s\" text_encoder=%d load_s=%.1f "
      "dit_bytes=%lld dit_bytes_expected=%lld dit_params=%lld "
      "text_encoder_bytes=%lld decoder_bytes=%lld rss_before_kb=%lld "
      "vm_hwm_kb=%lld vm_rss_kb=%lld rss_file_kb=%lld rss_anon_kb=%lld\n",
      parallel::FormatMeshSpec(*degrees).c_str(), rank,
      models::DiTShareString(*share).c_str(), text_encoder ? 1 : 0, load_s,
      static_cast<long long>(p.dit_shard().weight_bytes()),
      static_cast<long long>(expected.ok() ? expected->bytes : -1),
      static_cast<long long>(expected.ok() ? expected->parameters : -1),
      static_cast<long long>(parts.text_encoder_bytes),
      static_cast<long long>(parts.decoder_bytes),
      static_cast<long long>(rss_before),
      static_cast<long long>(StatusKb("VmHWM")),
      static_cast<long long>(StatusKb("VmRSS")),
      static_cast<long long>(StatusKb("RssFile")),
      static_cast<long long>(StatusKb("RssAnon")));
  return 0;
}

}  // namespace
}  // namespace dserve::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Loads a model as one rank of a mesh and prints its peak RSS, DiT "
      "bytes held and load time.");
  absl::ParseCommandLine(argc, argv);
  return dserve::bench::Run();
}
