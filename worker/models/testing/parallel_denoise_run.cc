#include "worker/models/testing/parallel_denoise_run.h"

#include <cctype>
#include <chrono>
#include <cmath>
#include <optional>
#include <utility>

#include "gtest/gtest.h"
#include "parallel/testing/multiprocess.h"
#include "worker/models/dit_share.h"
#include "worker/models/parallel_context.h"
#include "worker/models/random_weights.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::models::testing {
namespace {

// The rank's mesh, communicators and pipeline; nullopt after recording
// the failure.
std::optional<MeshRank> SetUpRank(const std::string& mesh_spec, int rank,
                                  const c10::intrusive_ptr<c10d::Store>& store,
                                  const PipelineConfig& config,
                                  uint64_t weights_seed,
                                  absl::Duration timeout) {
  auto degrees = parallel::ParseMeshSpec(mesh_spec);
  EXPECT_TRUE(degrees.ok()) << degrees.status();
  if (!degrees.ok()) return std::nullopt;
  std::vector<int> devices(parallel::WorldSize(*degrees));
  for (size_t i = 0; i < devices.size(); ++i) devices[i] = static_cast<int>(i);
  auto mesh = parallel::DeviceMesh::Create(*degrees, devices);
  EXPECT_TRUE(mesh.ok()) << mesh.status();
  if (!mesh.ok()) return std::nullopt;
  auto comms = parallel::MeshCommunicators::Create(
      *mesh, rank, store,
      parallel::GlooCommunicatorFactory(
          std::chrono::seconds(absl::ToInt64Seconds(timeout))));
  EXPECT_TRUE(comms.ok()) << comms.status();
  if (!comms.ok()) return std::nullopt;
  auto share = DiTShareForRank(*mesh, rank);
  EXPECT_TRUE(share.ok()) << share.status();
  if (!share.ok()) return std::nullopt;
  PipelineOptions options;
  options.dit_share = *share;
  auto pipeline =
      Pipeline::Create(config, RandomWeights(config, weights_seed), options);
  EXPECT_TRUE(pipeline.ok()) << pipeline.status();
  if (!pipeline.ok()) return std::nullopt;
  return MeshRank{mesh_spec, rank, *std::move(mesh), *std::move(comms),
                  *std::move(pipeline)};
}

// [B, F, H, W, 3] -> (B*F, 3, H, W) fp64.
at::Tensor Planes(const at::Tensor& pixels) {
  return pixels.to(at::kDouble)
      .reshape({-1, pixels.size(2), pixels.size(3), 3})
      .permute({0, 3, 1, 2})
      .contiguous();
}

}  // namespace

PipelineConfig SmallDiTConfig(int64_t dim) {
  PipelineConfig c = DefaultModelConfig();
  c.dit.dim = dim;
  c.dit.num_heads = 4;
  c.dit.num_layers = 4;
  c.dit.ffn_dim = 2 * dim;
  return c;
}

GenerationSpec SquareSpec(int size, int steps,
                          std::vector<GenerationItem> items) {
  GenerationSpec spec;
  spec.width = size;
  spec.height = size;
  spec.num_frames = 1;
  spec.num_steps = steps;
  spec.flow_shift = 3.0f;
  spec.items = std::move(items);
  return spec;
}

absl::Status RunOnMeshRanks(const std::string& mesh_spec,
                            const PipelineConfig& config,
                            uint64_t weights_seed, absl::Duration timeout,
                            const std::function<void(MeshRank&)>& fn) {
  auto degrees = parallel::ParseMeshSpec(mesh_spec);
  if (!degrees.ok()) return degrees.status();
  return parallel::testing::RunRanks(
      static_cast<int>(parallel::WorldSize(*degrees)),
      [&](int rank, int, c10::intrusive_ptr<c10d::Store> store) {
        at::set_num_threads(1);
        std::optional<MeshRank> me = SetUpRank(mesh_spec, rank, store, config,
                                               weights_seed, timeout);
        if (me.has_value()) fn(*me);
      },
      timeout);
}

int64_t DenoiseRun::total_bytes() const {
  int64_t sum = 0;
  for (int64_t b : step_bytes) sum += b;
  return sum;
}

double DenoiseRun::mean_step_bytes(size_t from) const {
  if (from >= step_bytes.size()) return 0;
  double sum = 0;
  for (size_t i = from; i < step_bytes.size(); ++i) sum += step_bytes[i];
  return sum / static_cast<double>(step_bytes.size() - from);
}

DenoiseRun RunDenoise(MeshRank& rank, const GenerationSpec& spec,
                      const ParallelDiTOptions& options) {
  DenoiseRun run;
  auto dit = ParallelDiT::Create(
      *rank.pipeline, ParallelContext{rank.mesh, &rank.comms}, options);
  EXPECT_TRUE(dit.ok()) << dit.status();
  if (!dit.ok()) return run;
  // Forwards every argument the pipeline passes (the step cache's too).
  GuidedPredictor predictor = [&](const auto&... args) {
    return (*dit)->GuidedPrediction(args...);
  };
  absl::StatusOr<DenoiseState> state = rank.pipeline->Prepare(spec);
  EXPECT_TRUE(state.ok()) << state.status();
  if (!state.ok()) return run;
  for (int i = 0; i < spec.num_steps; ++i) {
    const int64_t before = rank.comms.TotalStats().total_bytes();
    absl::Status s = rank.pipeline->Step(*state, predictor);
    EXPECT_TRUE(s.ok()) << rank.mesh_spec << " step " << i << ": " << s;
    if (!s.ok()) return run;
    run.step_bytes.push_back(rank.comms.TotalStats().total_bytes() - before);
  }
  run.latents = state->latents;
  run.pixels = rank.pipeline->Decode(*state);
  return run;
}

double ImagePsnr(const at::Tensor& a, const at::Tensor& b) {
  const double mse = (Planes(a) - Planes(b)).pow(2).mean().item<double>();
  return mse == 0 ? INFINITY : 10.0 * std::log10(1.0 / mse);
}

double ImageSsim(const at::Tensor& a_pixels, const at::Tensor& b_pixels) {
  const at::Tensor a = Planes(a_pixels), b = Planes(b_pixels);
  auto mean = [](const at::Tensor& t) {
    return at::avg_pool2d(t, {7, 7}, {1, 1});
  };
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  at::Tensor mu_a = mean(a), mu_b = mean(b);
  at::Tensor var_a = mean(a * a) - mu_a * mu_a;
  at::Tensor var_b = mean(b * b) - mu_b * mu_b;
  at::Tensor cov = mean(a * b) - mu_a * mu_b;
  at::Tensor s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) /
                 ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2));
  return s.mean().item<double>();
}

std::string MeshTestName(const std::string& mesh_spec) {
  std::string name;
  for (char ch : mesh_spec) {
    name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  }
  return name;
}

}  // namespace dserve::models::testing
