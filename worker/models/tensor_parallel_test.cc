// TensorParallelBlocks on tp = 2 and 4 thread "ranks" (fake communicator)
// against the unsharded DiT blocks on the same weights.

#include "worker/models/tensor_parallel.h"

#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parallel/testing/fake_communicator.h"
#include "worker/models/dit.h"
#include "worker/models/model_config.h"
#include "worker/models/random_weights.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::models {
namespace {

using ::testing::HasSubstr;

PipelineConfig SmallConfig() {
  PipelineConfig c = DefaultModelConfig();
  c.dit.dim = 64;
  c.dit.num_heads = 4;
  c.dit.num_layers = 2;
  c.dit.ffn_dim = 96;
  return c;
}

double RelErr(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() /
         want.abs().max().item<double>();
}

TEST(TensorParallelShardTest, ContiguousEqualBlocks) {
  EXPECT_EQ(TensorParallelShard(64, 0, 4).begin, 0);
  EXPECT_EQ(TensorParallelShard(64, 3, 4).begin, 48);
  EXPECT_EQ(TensorParallelShard(64, 3, 4).size, 16);
}

TEST(TensorParallelBlocksTest, RejectsIndivisibleHeadsAndFfn) {
  PipelineConfig c = SmallConfig();
  WeightMap w = RandomWeights(c, 1);
  auto heads = TensorParallelBlocks::Create(c.dit, w, 0, 3);
  ASSERT_FALSE(heads.ok());
  EXPECT_THAT(std::string(heads.status().message()),
              HasSubstr("num_heads = 4 is not divisible by tp = 3"));
  c.dit.ffn_dim = 90;
  auto ffn = TensorParallelBlocks::Create(c.dit, RandomWeights(c, 1), 0, 4);
  ASSERT_FALSE(ffn.ok());
  EXPECT_THAT(std::string(ffn.status().message()),
              HasSubstr("ffn_dim = 90 is not divisible by tp = 4"));
}

class TensorParallelBlocksEquivalence : public ::testing::TestWithParam<int> {};

TEST_P(TensorParallelBlocksEquivalence, MatchesUnshardedBlocks) {
  const int tp = GetParam();
  at::set_num_threads(1);
  PipelineConfig c = SmallConfig();
  WeightMap w = RandomWeights(c, 5);
  absl::StatusOr<DiT> dit = DiT::Create(c.dit, w);
  ASSERT_TRUE(dit.ok()) << dit.status();
  at::manual_seed(3);
  at::Tensor latents = at::randn({2, c.dit.in_channels, 1, 12, 16});
  at::Tensor t = at::tensor({900.0f, 120.0f});
  at::Tensor ctx = at::randn({2, c.dit.text_len, c.dit.text_dim});
  DiTActivations ref = dit->Embed(latents, t, ctx);
  dit->RunBlocks(ref, 0, c.dit.num_layers);

  parallel::testing::FakeCommunicatorHub hub(tp);
  std::vector<at::Tensor> got(tp);
  std::vector<std::thread> threads;
  for (int r = 0; r < tp; ++r) {
    threads.emplace_back([&, r] {
      auto comm = hub.Connect(r);
      ASSERT_TRUE(comm.ok()) << comm.status();
      auto blocks = TensorParallelBlocks::Create(c.dit, w, r, tp);
      ASSERT_TRUE(blocks.ok()) << blocks.status();
      DiTActivations a = dit->Embed(latents, t, ctx);
      blocks->RunBlocks(a, 0, c.dit.num_layers, **comm);
      got[r] = a.x;
    });
  }
  for (std::thread& th : threads) th.join();
  for (int r = 0; r < tp; ++r) {
    ASSERT_TRUE(got[r].defined()) << "rank " << r;
    EXPECT_LT(RelErr(got[r], ref.x), 1e-5) << "tp " << tp << " rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Degrees, TensorParallelBlocksEquivalence,
                         ::testing::Values(1, 2, 4));

}  // namespace
}  // namespace dserve::models
