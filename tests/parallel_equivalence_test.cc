// Every parallel layout against the 1-process run: a FULL multi-step
// denoising run (3 Euler steps, CFG, two items: one guided, one with
// guidance 1) of a small random-weight DiT (random head, so every path
// shows) in N real processes over loopback Gloo must end on the same
// latents as the 1-process Pipeline::Step loop on the same weights and
// seeds: max|Δ| / max|ref| ≤ 1e-4 in fp32.
//
// Every layout runs twice: with the built-in model's DiT (pixel space,
// coordinate planes, patch 1x4x4) and with a tiny Wan2.1 DiT (16 latent
// channels, patch 1x2x2, text_dim 32 != dim 64, no planes) on Wan's
// schedule with UniPC (3 steps: first-order start, order-2 predictor, both
// corrector orders), 5 frames (2 latent frames) on a non-square token grid.
//
// Each rank process computes the 1-process reference itself (the model is
// tiny), then runs the same steps through ParallelDiT on its mesh.
//
// The "_cache" layouts (issue 15) run kCacheSteps steps with a step cache
// that reuses several of them (kCacheConfig): every layout must reuse the
// same steps as the 1-process run (steps_reused, steps_computed equal,
// steps_reused > 0), end on the same latents (same tolerance) and decode
// to the same image (max per-pixel |Δ| <= 1/255); and the cache at
// threshold 0 must be bit-identical to no cache on the same layout.
//
// //tests:parallel_equivalence_cuda_test compiles this file with
// DSERVE_EQUIVALENCE_ON_CUDA: every rank and the reference run on cuda:0 in
// bf16 (the ranks share the GPU over Gloo with host staging, as
// --comm=gloo does), and the tolerance is the bf16 one of tools/gpu/README.md,
// 3e-2 (bf16 rounding, 2^-8 per op, differs between the sharded and the
// unsharded order of operations). Without a CUDA device it skips.

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "parallel/device_mesh.h"
#include "parallel/host_staging_communicator.h"
#include "parallel/mesh_communicators.h"
#include "parallel/testing/multiprocess.h"
#include "worker/models/dit_share.h"
#include "worker/models/model_config.h"
#include "worker/models/parallel_context.h"
#include "worker/models/parallel_dit.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"
#include "worker/models/vae/testing/random_vae_weights.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve {
namespace {

constexpr int kSteps = 3;
constexpr int kCacheSteps = 10;
// Random weights change the first block's residual by δ ≈ 0.4-0.85 per
// step, so threshold 0.9 reuses single steps only (any two add up to more):
// 4 of 10 on each test model, fewer than the 6 the policy allows (warmup 1,
// 2 in a row, last computed), and the accumulated δ stays ~10 % away from
// the threshold, so rounding differences between layouts cannot flip a
// decision (fp32 reassociation is ~1e-6).
models::StepCacheConfig CacheConfig(double threshold) {
  models::StepCacheConfig c;
  c.enabled = true;
  c.threshold = threshold;
  c.warmup_steps = 1;
  c.max_reused_in_a_row = 2;
  return c;
}
constexpr double kCacheThreshold = 0.9;
#if defined(DSERVE_EQUIVALENCE_ON_CUDA)
const models::PipelineOptions kPlacement{at::Device(at::kCUDA, 0),
                                         at::kBFloat16};
constexpr double kTolerance = 3e-2;
#else
const models::PipelineOptions kPlacement{};  // CPU, fp32
constexpr double kTolerance = 1e-4;
#endif

// Gloo for every group; tensors on a GPU are staged through the host, so
// all ranks can share cuda:0 (NCCL would refuse two ranks on one device).
parallel::CommunicatorFactory TestCommunicators() {
  parallel::CommunicatorFactory gloo =
      parallel::GlooCommunicatorFactory(std::chrono::seconds(60));
  if (kPlacement.device.is_cpu()) return gloo;
  return [gloo](const c10::intrusive_ptr<c10d::Store>& store,
                const std::string& name, int rank, int size)
             -> absl::StatusOr<std::unique_ptr<parallel::Communicator>> {
    auto inner = gloo(store, name, rank, size);
    if (!inner.ok()) return inner.status();
    return parallel::WrapWithHostStaging(*std::move(inner));
  };
}

models::PipelineConfig TestConfig(bool wan) {
  models::PipelineConfig c = models::DefaultModelConfig();
  if (wan) {
    models::DiTConfig d;  // Wan2.1's shapes, shrunk
    d.in_channels = d.out_channels = 16;
    d.patch = {1, 2, 2};
    d.text_dim = 32;
    d.text_len = 16;
    models::PipelineConfig w = models::WanPipelineConfig(d);
    // The word encoder stands in for umT5 (its own tests cover it); its
    // width is the DiT's text_dim, not dim.
    w.text_encoder_type = "word";
    w.vocabulary = c.vocabulary;
    w.text_encoder = c.text_encoder;
    w.text_encoder.dim = d.text_dim;
    w.text_encoder.max_len = d.text_len;
    c = w;
  }
  c.dit.dim = 64;
  c.dit.num_heads = 4;  // head_dim 16; u·tp ∈ {1, 2, 4}
  c.dit.num_layers = 4;  // pp 3 splits unevenly: 2 + 1 + 1
  c.dit.ffn_dim = 128;
  return c;
}

models::WeightMap TestWeights(const models::PipelineConfig& config) {
  models::WeightMap w = models::RandomWeights(config, 21);
  if (config.decoder == "wan_vae") {
    for (auto& [k, v] : models::RandomWanVaeWeights(
             models::TinyWanVaeConfig(), 22)) {
      w.emplace("vae." + k, v);
    }
  }
  return w;
}

// Two items: a guided one and one with guidance 1 (no unconditional branch
// in the 1-process path), so the model batch has 3 rows.
models::GenerationSpec TestSpec(int width, int height, bool wan) {
  models::GenerationSpec spec;
  spec.width = width;
  spec.height = height;
  spec.num_frames = wan ? 5 : 1;
  spec.num_steps = kSteps;
  spec.flow_shift = 3.0f;
  spec.items = {{"a red circle on the left", "blue", 11, 4.5f},
                {"a green square", "", 12, 1.0f}};
  return spec;
}

// The state after every step of `spec`; latents undefined on failure.
// `accumulated` (optional): the step cache's accumulated change after each
// step (the δ sum a reused step was decided on; 0 after a computed one).
models::DenoiseState RunSteps(const models::Pipeline& pipeline,
                              const models::GenerationSpec& spec,
                              const models::GuidedPredictor& predictor,
                              std::vector<double>* accumulated = nullptr) {
  absl::StatusOr<models::DenoiseState> state = pipeline.Prepare(spec);
  EXPECT_TRUE(state.ok()) << state.status();
  if (!state.ok()) return {};
  for (int i = 0; i < spec.num_steps; ++i) {
    absl::Status s = pipeline.Step(*state, predictor);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) return {};
    if (accumulated != nullptr) {
      accumulated->push_back(state->step_cache.accumulated);
    }
  }
  return *std::move(state);
}

// The cached run on a mesh against the cached 1-process run: the same
// decisions on every rank and the same image.
void CheckCachedRun(const models::Pipeline& whole,
                    const models::DenoiseState& want,
                    const models::Pipeline& sharded,
                    const models::DenoiseState& got,
                    const std::vector<double>& want_accumulated,
                    const std::vector<double>& got_accumulated,
                    const std::string& mesh_spec, int rank) {
  EXPECT_GT(want.step_cache.steps_reused, 0) << "the test config reuses nothing";
  // Fewer than the policy's maximum: the measured change decided.
  EXPECT_LT(want.step_cache.steps_reused, 6);
  EXPECT_EQ(got.step_cache.steps_reused, want.step_cache.steps_reused)
      << mesh_spec << " rank " << rank;
  EXPECT_EQ(got.step_cache.steps_computed, want.step_cache.steps_computed)
      << mesh_spec << " rank " << rank;
  // Two computed residuals were cached, so the reused steps after the
  // second computed one added the extrapolated residual (the default
  // StepCacheConfig::extrapolation), on every rank from its own shard.
  EXPECT_TRUE(got.step_cache.prev_remaining_residual.defined())
      << mesh_spec << " rank " << rank;
  // The δ sums the reused steps were decided on: the reduced parts equal
  // the 1-process sums (rows, sequence shards and padding counted alike).
  ASSERT_EQ(got_accumulated.size(), want_accumulated.size());
  for (size_t i = 0; i < want_accumulated.size(); ++i) {
    EXPECT_NEAR(got_accumulated[i], want_accumulated[i],
                kTolerance * std::max(1.0, want_accumulated[i]))
        << mesh_spec << " rank " << rank << " step " << i;
  }
  const at::Tensor a = whole.Decode(want);
  const at::Tensor b = sharded.Decode(got);
  ASSERT_EQ(a.sizes(), b.sizes());
  const double pixel = (a - b).abs().max().item<double>();
  if (rank == 0) {
    std::printf("step cache %s: reused %d of %d (1 process: %d), max pixel "
                "|d| = %.3g (tol 1/255)\n",
                mesh_spec.c_str(), got.step_cache.steps_reused, kCacheSteps,
                want.step_cache.steps_reused, pixel);
  }
  EXPECT_LE(pixel, 1.0 / 255) << mesh_spec << " rank " << rank;
}

void CheckLayout(const std::string& mesh_spec, int width, int height,
                 bool async_ulysses, bool wan, bool step_cache, int rank,
                 const c10::intrusive_ptr<c10d::Store>& store) {
  at::set_num_threads(1);
  const models::PipelineConfig config = TestConfig(wan);
  auto pipeline =
      models::Pipeline::Create(config, TestWeights(config), kPlacement);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  models::GenerationSpec spec = TestSpec(width, height, wan);
  if (step_cache) {
    spec.num_steps = kCacheSteps;
    spec.step_cache = CacheConfig(kCacheThreshold);
  }
  std::vector<double> want_accumulated, got_accumulated;
  const models::DenoiseState reference =
      RunSteps(**pipeline, spec, nullptr, &want_accumulated);
  const at::Tensor want = reference.latents;
  ASSERT_TRUE(want.defined());

  auto degrees = parallel::ParseMeshSpec(mesh_spec);
  ASSERT_TRUE(degrees.ok()) << degrees.status();
  std::vector<int> devices(parallel::WorldSize(*degrees));
  for (size_t i = 0; i < devices.size(); ++i) devices[i] = static_cast<int>(i);
  auto mesh = parallel::DeviceMesh::Create(*degrees, devices);
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  auto comms =
      parallel::MeshCommunicators::Create(*mesh, rank, store,
                                          TestCommunicators());
  ASSERT_TRUE(comms.ok()) << comms.status();
  // The parallel run loads the pipeline as dserve_worker does: this rank
  // materialises only its share of the DiT (its PP stage's blocks, its TP
  // slices); the reference above holds the whole DiT.
  auto share = models::DiTShareForRank(*mesh, rank);
  ASSERT_TRUE(share.ok()) << share.status();
  models::PipelineOptions sharded_options = kPlacement;
  sharded_options.dit_share = *share;
  auto sharded =
      models::Pipeline::Create(config, TestWeights(config), sharded_options);
  ASSERT_TRUE(sharded.ok()) << sharded.status();
  auto dit = models::ParallelDiT::Create(
      **sharded, models::ParallelContext{*mesh, &*comms},
      models::ParallelDiTOptions{async_ulysses});
  ASSERT_TRUE(dit.ok()) << dit.status();
  models::GuidedPredictor predictor =
      [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& c,
          const at::Tensor& u, const std::vector<float>& g,
          models::StepCacheStep* cache) {
        return (*dit)->GuidedPrediction(x, t, c, u, g, cache);
      };
  const models::DenoiseState run =
      RunSteps(**sharded, spec, predictor, &got_accumulated);
  const at::Tensor got = run.latents;
  ASSERT_TRUE(got.defined());
  if (step_cache) {
    CheckCachedRun(**pipeline, reference, **sharded, run, want_accumulated,
                   got_accumulated, mesh_spec, rank);
    // Threshold 0 decides on every rank and reuses nothing: bit-identical
    // to the same layout without the cache.
    models::GenerationSpec zero = spec;
    zero.step_cache = CacheConfig(0.0);
    models::GenerationSpec off = spec;
    off.step_cache = {};
    const int64_t before = comms->TotalStats().total_bytes();
    const models::DenoiseState z = RunSteps(**sharded, zero, predictor);
    const int64_t between = comms->TotalStats().total_bytes();
    const models::DenoiseState o = RunSteps(**sharded, off, predictor);
    const int64_t after = comms->TotalStats().total_bytes();
    ASSERT_TRUE(z.latents.defined() && o.latents.defined());
    EXPECT_TRUE(at::equal(z.latents, o.latents)) << mesh_spec << " rank " << rank;
    // The only extra traffic is the decision: on pp stage 0 / tp rank 0 a
    // [2] float64 all-reduce over cfg and over sp (CommStats counts
    // 2·(n−1)/n·16), and world rank 0's 16-byte broadcast.
    int64_t decision_bytes = 0;
    const parallel::MeshCoords& at = comms->coords();
    if (at.pp == 0 && at.tp == 0) {
      for (int n : {degrees->cfg, degrees->ring * degrees->ulysses}) {
        if (n > 1) decision_bytes += 2 * (n - 1) * 16 / n;
      }
    }
    if (rank == 0) decision_bytes += (parallel::WorldSize(*degrees) - 1) * 16;
    EXPECT_EQ((between - before) - (after - between),
              kCacheSteps * decision_bytes)
        << mesh_spec << " rank " << rank;
    EXPECT_EQ(z.step_cache.steps_computed, kCacheSteps);
    EXPECT_EQ(z.step_cache.steps_reused, 0);
  }
  ASSERT_EQ(got.sizes(), want.sizes());
  const double err = (got - want).abs().max().item<double>() /
                     want.abs().max().item<double>();
  // Read by tools/gpu/run_all.sh (equivalence stage) for docs/gpu.md.
  if (rank == 0) {
    std::printf("equivalence %s %dx%d%s%s: max|d|/max|ref| = %.3g (tol %.0e)\n",
                mesh_spec.c_str(), width, height, wan ? " wan" : "",
                async_ulysses ? " async" : "", err, kTolerance);
  }
  EXPECT_LE(err, kTolerance) << mesh_spec << " rank " << rank;
}

struct Layout {
  std::string mesh;
  int width;
  int height;
  // ParallelDiTOptions::async_ulysses; the plain layouts test the blocking
  // scatter, the "_async" ones the overlapped q/k/v scatter.
  bool async_ulysses = false;
  // The tiny Wan2.1 DiT (TestConfig(true)) instead of the built-in one.
  bool wan = false;
  // kCacheSteps steps with the step cache on (CheckCachedRun).
  bool step_cache = false;
};

std::string LayoutName(const ::testing::TestParamInfo<Layout>& info) {
  std::string name;
  for (char ch : info.param.mesh) {
    name += (std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_');
  }
  return name + "_" + std::to_string(info.param.width) + "x" +
         std::to_string(info.param.height) +
         (info.param.async_ulysses ? "_async" : "") +
         (info.param.wan ? "_wan" : "") +
         (info.param.step_cache ? "_cache" : "");
}

class ParallelEquivalenceTest : public ::testing::TestWithParam<Layout> {};

TEST_P(ParallelEquivalenceTest, MatchesOneProcess) {
  const Layout& layout = GetParam();
  if (kPlacement.device.is_cuda() && !at::hasCUDA()) {
    GTEST_SKIP() << "needs a CUDA LibTorch and a GPU";
  }
  auto degrees = parallel::ParseMeshSpec(layout.mesh);
  ASSERT_TRUE(degrees.ok()) << degrees.status();
  const int world = static_cast<int>(parallel::WorldSize(*degrees));
  absl::Status run = parallel::testing::RunRanks(
      world,
      [&](int rank, int, c10::intrusive_ptr<c10d::Store> store) {
        CheckLayout(layout.mesh, layout.width, layout.height,
                    layout.async_ulysses, layout.wan, layout.step_cache, rank,
                    store);
      },
      absl::Seconds(120));
  EXPECT_TRUE(run.ok()) << run;
}

// 24x16 pixels → a 4x6 token grid (24 tokens: every degree divides it);
// 20x12 → 3x5 (15 tokens: no SP degree divides it, padded keys masked).
// The Wan copies: 48x32 → latent 6x4 → 2x3 tokens x 2 latent frames (12
// tokens: 2 and 4 divide it); 16x48 → 3x1 x 2 (6 tokens: 4 does not).
std::vector<Layout> AllLayouts() {
  const std::vector<Layout> base = {Layout{"cfg=2", 24, 16}, Layout{"ulysses=2", 24, 16},
                      Layout{"ulysses=4", 24, 16}, Layout{"ring=2", 24, 16},
                      Layout{"ring=4", 24, 16},
                      Layout{"ring=2,ulysses=2", 24, 16},
                      Layout{"pp=2", 24, 16}, Layout{"pp=3", 24, 16},
                      Layout{"tp=2", 24, 16}, Layout{"tp=4", 24, 16},
                      Layout{"cfg=2,ulysses=2", 24, 16},
                      Layout{"cfg=2,ring=2,ulysses=2", 24, 16},
                      Layout{"cfg=2,pp=2", 24, 16},
                      Layout{"cfg=2,tp=2", 24, 16},
                      Layout{"pp=2,tp=2", 24, 16},
                      Layout{"ulysses=2", 20, 12}, Layout{"ring=2", 20, 12},
                      Layout{"ulysses=4", 20, 12},
                      Layout{"ring=2,ulysses=2", 20, 12},
                      Layout{"cfg=2,ring=2,pp=2", 20, 12},
                      Layout{"ulysses=2", 24, 16, true},
                      Layout{"ulysses=4", 24, 16, true},
                      Layout{"cfg=2,ulysses=2", 24, 16, true},
                      Layout{"ring=2,ulysses=2", 24, 16, true},
                      Layout{"ulysses=2", 20, 12, true},
                      // Step cache: every mode alone, padded SP, and
                      // combined layouts.
                      Layout{"cfg=2", 24, 16, false, false, true},
                      Layout{"ulysses=2", 24, 16, false, false, true},
                      Layout{"ring=2", 20, 12, false, false, true},
                      Layout{"pp=2", 24, 16, false, false, true},
                      Layout{"tp=2", 24, 16, false, false, true},
                      Layout{"cfg=2,ring=2,pp=2", 20, 12, false, false, true},
                      Layout{"cfg=2,pp=2,tp=2", 24, 16, false, false, true}};
  std::vector<Layout> all = base;
  for (Layout l : base) {
    const bool square_grid = l.width == 24;
    l.width = square_grid ? 48 : 16;
    l.height = square_grid ? 32 : 48;
    l.wan = true;
    all.push_back(l);
  }
  return all;
}

INSTANTIATE_TEST_SUITE_P(Layouts, ParallelEquivalenceTest,
                         ::testing::ValuesIn(AllLayouts()), LayoutName);

}  // namespace
}  // namespace dserve
