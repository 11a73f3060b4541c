// Compressed sequence-parallel traffic through the real server and workers
// (issue 15): `dserve_server --sp_compression=int8|int4` reaches every rank
// of a ulysses=2 replica, the replica serves, and the picture stays within
// the codec's quality bound of the exact ulysses=2 picture.
//
// Three servers, one replica of 2 ranks each (--mesh=ulysses=2): exact,
// int8 and int4. The same guided request (seed, 6 steps, a 36x28 image =
// a 9x7 token grid that ulysses 2 pads) is served on each. The first step
// is exact (the codec's warm-up), the other 5 send residuals. PSNR over the
// decoded bytes must be >= 35 dB (the bound); int4's coarser
// quantisation must change at least one byte, which proves the flag took
// effect (an ignored flag gives the exact picture bit for bit).
// A fourth server, int4 with --sp_compression_exact_steps=6, must give the
// exact picture bit for bit (every step exact).
// Bytes per step are measured by //tests:sp_compression_test and
// //bench:sp_compression_bench from CommStats; this test checks the
// serving path.

#include <cmath>
#include <cstdio>
#include <string>

#include "common/png.h"
#include "common/testing/png_compare.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {
namespace {

constexpr absl::Duration kJobTimeout = absl::Seconds(120);

// PSNR in dB of two pictures of the same size over their 8-bit channels;
// +inf when they are identical.
double PsnrDb(const common::DecodedImage& a, const common::DecodedImage& b) {
  double squared = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) {
    const double d = static_cast<double>(a.rgb[i]) - b.rgb[i];
    squared += d * d;
  }
  if (squared == 0) return INFINITY;
  const double mse = squared / static_cast<double>(a.rgb.size());
  return 10.0 * std::log10(255.0 * 255.0 / mse);
}

// The picture a fresh ulysses=2 server started with `compression` (and
// `exact_steps` exact steps per plan) returns for the test's request; empty
// on failure.
common::DecodedImage ServeOnce(const std::string& compression,
                               int exact_steps = 1) {
  ServerProcess::Options options;
  options.replicas = 1;
  options.extra_flags = {
      "--mesh=ulysses=2", "--sp_compression=" + compression,
      "--sp_compression_exact_steps=" + std::to_string(exact_steps)};
  auto server = ServerProcess::Start(options);
  EXPECT_TRUE(server.ok()) << compression << ": " << server.status();
  if (!server.ok()) return {};
  auto stub = dserve::v1::DiffusionService::NewStub((*server)->channel());
  auto model = DefaultModel(*stub);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  dserve::v1::GenerateRequest request = SmallRequest(*model, 32, 6);
  request.set_width(36);
  request.set_height(28);
  request.set_prompt("a red circle on the left");
  request.set_negative_prompt("blue");
  request.set_guidance_scale(4.5f);
  request.set_seed(4321);
  const GenerateOutcome outcome = GenerateToEnd(*stub, request, kJobTimeout);
  EXPECT_TRUE(outcome.status.ok())
      << compression << ": " << outcome.status.error_message();
  const dserve::v1::Result* result = outcome.result();
  EXPECT_NE(result, nullptr) << compression;
  absl::StatusOr<int> code = (*server)->Stop();
  EXPECT_TRUE(code.ok() && *code == 0) << compression;
  if (result == nullptr || result->media_size() != 1) return {};
  absl::StatusOr<common::DecodedImage> png =
      common::DecodePng(result->media(0).data());
  EXPECT_TRUE(png.ok()) << png.status();
  return png.ok() ? *png : common::DecodedImage();
}

TEST(SpCompressionE2eTest, CompressedReplicasServeWithinTheQualityBound) {
  const common::DecodedImage exact = ServeOnce("off");
  ASSERT_EQ(exact.width, 36);
  ASSERT_EQ(exact.height, 28);
  for (const std::string scheme : {"int8", "int4"}) {
    const common::DecodedImage got = ServeOnce(scheme);
    ASSERT_EQ(got.width, exact.width) << scheme;
    ASSERT_EQ(got.height, exact.height) << scheme;
    ASSERT_EQ(got.rgb.size(), exact.rgb.size()) << scheme;
    absl::StatusOr<common::testing::PixelDiff> diff =
        common::testing::ComparePixels(got, exact);
    ASSERT_TRUE(diff.ok()) << diff.status();
    const double psnr = PsnrDb(got, exact);
    std::printf("%s vs exact (ulysses=2, 6 steps): PSNR %.1f dB, max |diff| "
                "%d/255, %zu of %zu bytes differ\n",
                scheme.c_str(), psnr, diff->max_abs, diff->differing,
                diff->total);
    EXPECT_GE(psnr, 35.0) << scheme;
    if (scheme == "int4") {
      EXPECT_GT(diff->differing, 0u)
          << "int4 gave the exact picture bit for bit: the flag did not "
             "reach the ranks";
    }
  }
  // --sp_compression_exact_steps reaches the ranks: with all 6 steps exact,
  // int4 sends nothing compressed and gives the exact picture bit for bit
  // (with the default 1 it changes bytes, above).
  const common::DecodedImage all_exact = ServeOnce("int4", /*exact_steps=*/6);
  EXPECT_EQ(all_exact.rgb, exact.rgb)
      << "int4 with 6 exact steps of 6 differs from the exact picture";
}

}  // namespace
}  // namespace dserve::tests
