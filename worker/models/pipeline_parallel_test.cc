// StageLayers splits and the micro-batch stage schedule on thread "ranks"
// (fake communicator) against running every block in one place.

#include "worker/models/pipeline_parallel.h"

#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "parallel/testing/fake_communicator.h"
#include "worker/models/dit.h"
#include "worker/models/model_config.h"
#include "worker/models/random_weights.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::models {
namespace {

TEST(StageLayersTest, ContiguousAndAsEvenAsPossible) {
  struct Case {
    int layers, stages;
    std::vector<std::pair<int, int>> want;
  };
  const std::vector<Case> cases = {
      {4, 1, {{0, 4}}},
      {4, 2, {{0, 2}, {2, 4}}},
      {4, 3, {{0, 2}, {2, 3}, {3, 4}}},
      {5, 4, {{0, 2}, {2, 3}, {3, 4}, {4, 5}}},
      {30, 4, {{0, 8}, {8, 16}, {16, 23}, {23, 30}}},
      {3, 3, {{0, 1}, {1, 2}, {2, 3}}},
  };
  for (const Case& c : cases) {
    for (int s = 0; s < c.stages; ++s) {
      LayerRange r = StageLayers(c.layers, s, c.stages);
      EXPECT_EQ(r.first, c.want[s].first) << c.layers << "/" << c.stages;
      EXPECT_EQ(r.last, c.want[s].second) << c.layers << "/" << c.stages;
    }
  }
}

TEST(StageLayersTest, RejectsMoreStagesThanLayers) {
  EXPECT_THROW(StageLayers(2, 0, 3), c10::Error);
}

// 4 layers over 3 stages (uneven), 3 micro-batches of one row each.
TEST(RunPipelineStagesTest, ThreeStagesEqualAllBlocks) {
  at::set_num_threads(1);
  PipelineConfig c = DefaultModelConfig();
  c.dit.dim = 32;
  c.dit.num_heads = 4;
  c.dit.ffn_dim = 64;
  c.dit.num_layers = 4;
  absl::StatusOr<DiT> dit = DiT::Create(c.dit, RandomWeights(c, 9));
  ASSERT_TRUE(dit.ok()) << dit.status();
  at::manual_seed(4);
  at::Tensor latents = at::randn({3, c.dit.in_channels, 1, 8, 12});
  at::Tensor t = at::tensor({900.0f, 500.0f, 10.0f});
  at::Tensor ctx = at::randn({3, c.dit.text_len, c.dit.text_dim});
  DiTActivations ref = dit->Embed(latents, t, ctx);
  dit->RunBlocks(ref, 0, 4);

  const int stages = 3;
  parallel::testing::FakeCommunicatorHub hub(stages);
  std::vector<at::Tensor> last_x;
  std::vector<int> layers_run(stages, 0);
  std::vector<std::thread> threads;
  for (int s = 0; s < stages; ++s) {
    threads.emplace_back([&, s] {
      auto comm = hub.Connect(s);
      ASSERT_TRUE(comm.ok()) << comm.status();
      DiTActivations full = dit->Embed(latents, t, ctx);
      std::vector<DiTActivations> micro;
      for (int m = 0; m < 3; ++m) {
        DiTActivations a = full;
        a.x = full.x.narrow(0, m, 1).contiguous();
        a.e = full.e.narrow(0, m, 1);
        a.e0 = full.e0.narrow(0, m, 1);
        a.context = full.context.narrow(0, m, 1);
        micro.push_back(a);
      }
      const LayerRange r = StageLayers(4, s, stages);
      RunPipelineStages(micro, **comm, [&](DiTActivations& a) {
        dit->RunBlocks(a, r.first, r.last);
        layers_run[s] += r.last - r.first;
      });
      if (s == stages - 1) {
        for (const DiTActivations& a : micro) last_x.push_back(a.x);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(layers_run, (std::vector<int>{6, 3, 3}));  // 3 micro-batches
  ASSERT_EQ(last_x.size(), 3u);
  at::Tensor got = at::cat(last_x, 0);
  EXPECT_LT((got - ref.x).abs().max().item<double>() /
                ref.x.abs().max().item<double>(),
            1e-5);
}

}  // namespace
}  // namespace dserve::models
