// --sp_compression (issue 15 item 2), every scheme, over real processes
// (loopback Gloo): a full denoising run (8 Euler steps, CFG, two items) of a
// small random-weight DiT through ParallelDiT with the Ulysses all-to-alls
// and the Ring K/V hops sent as int8 or int4 residuals, after the default
// exact warm-up, must decode to an image within PSNR >= 35 dB of the exact
// multi-rank image, send exactly the exact run's bytes in the warm-up steps
// and fewer bytes in every later step (CommStats); and a state that never
// leaves its exact warm-up must give the exact run's latents bit for bit
// (the state's exact path changes nothing).

#include <cstdio>
#include <string>
#include <tuple>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "parallel/sp_compression.h"
#include "worker/models/parallel_dit.h"
#include "worker/models/pipeline.h"
#include "worker/models/testing/parallel_denoise_run.h"
#include <ATen/ATen.h>

namespace dserve {
namespace {

using models::testing::DenoiseRun;
using models::testing::MeshRank;
using parallel::SpCompression;

constexpr int kSteps = 8;

void CheckScheme(MeshRank& me, SpCompression scheme) {
  const std::string name = parallel::SpCompressionName(scheme);
  // Two items, one at guidance 1 (its unconditional branch is skipped).
  const models::GenerationSpec spec = models::testing::SquareSpec(
      32, kSteps,
      {{"a red circle on the left", "blue", 11, 4.5f},
       {"a green square", "", 12, 1.0f}});
  const DenoiseRun exact = models::testing::RunDenoise(me, spec, {});
  models::ParallelDiTOptions packing;
  packing.sp_compression = scheme;
  ASSERT_EQ(packing.sp_exact_steps, parallel::kDefaultSpExactSteps);
  const DenoiseRun packed = models::testing::RunDenoise(me, spec, packing);
  models::ParallelDiTOptions warmup_only = packing;
  warmup_only.sp_exact_steps = kSteps;
  const DenoiseRun all_exact =
      models::testing::RunDenoise(me, spec, warmup_only);
  ASSERT_TRUE(exact.pixels.defined() && packed.pixels.defined() &&
              all_exact.latents.defined());

  EXPECT_TRUE(all_exact.latents.equal(exact.latents))
      << me.mesh_spec << ": a " << name
      << " state in its exact warm-up changed the run";
  EXPECT_EQ(all_exact.step_bytes, exact.step_bytes);
  for (int i = 0; i < kSteps; ++i) {
    if (i < packing.sp_exact_steps) {
      EXPECT_EQ(packed.step_bytes[i], exact.step_bytes[i])
          << me.mesh_spec << " " << name << " warm-up step " << i;
    } else {
      EXPECT_LT(packed.step_bytes[i], exact.step_bytes[i])
          << me.mesh_spec << " " << name << " step " << i;
    }
  }
  const double psnr = models::testing::ImagePsnr(packed.pixels, exact.pixels);
  if (me.rank == 0) {
    std::printf("sp_compression %s %s: %d steps (%d exact), bytes/rank %lld "
                "-> %lld (%.2fx), PSNR %.1f dB vs exact\n",
                me.mesh_spec.c_str(), name.c_str(), kSteps,
                packing.sp_exact_steps,
                static_cast<long long>(exact.total_bytes()),
                static_cast<long long>(packed.total_bytes()),
                static_cast<double>(exact.total_bytes()) /
                    packed.total_bytes(),
                psnr);
  }
  EXPECT_GE(psnr, 35.0) << me.mesh_spec << " " << name << " rank " << me.rank;
}

class SpCompressionTest
    : public ::testing::TestWithParam<std::tuple<std::string, SpCompression>> {
};

TEST_P(SpCompressionTest, WithinPsnrFewerBytesAndWarmUpExact) {
  const auto& [mesh, scheme] = GetParam();
  absl::Status run = models::testing::RunOnMeshRanks(
      mesh, models::testing::SmallDiTConfig(64), /*weights_seed=*/21,
      absl::Seconds(120), [&](MeshRank& me) { CheckScheme(me, scheme); });
  EXPECT_TRUE(run.ok()) << run;
}

INSTANTIATE_TEST_SUITE_P(
    MeshesAndSchemes, SpCompressionTest,
    ::testing::Combine(::testing::Values("ulysses=2", "ring=2",
                                         "ring=2,ulysses=2"),
                       ::testing::Values(SpCompression::kInt8,
                                         SpCompression::kInt4)),
    [](const auto& info) {
      return models::testing::MeshTestName(std::get<0>(info.param)) + "_" +
             parallel::SpCompressionName(std::get<1>(info.param));
    });

}  // namespace
}  // namespace dserve
