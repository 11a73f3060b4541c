// Batching through the real server and workers: with --max_batch=4 and
// --batch_wait_ms=200, four concurrent Generate calls share plans, every call
// gets its own result, and each image is the same picture as the same
// request run alone (every item's noise is drawn from its own seed at full
// shape, and the model's batched ops are per-sample; only the GEMMs' float
// rounding may differ with the batch shape, by at most one 8-bit level).

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/png.h"
#include "common/testing/png_compare.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {
namespace {

int StartedBatchSize(const GenerateOutcome& outcome) {
  for (const auto& e : outcome.events) {
    if (e.has_started()) return e.started().batch_size();
  }
  return 0;
}

TEST(BatchingE2eTest, ConcurrentCallsBatchAndMatchTheirSoloImages) {
  ServerProcess::Options options;
  options.replicas = 1;
  options.extra_flags = {"--max_batch=4", "--batch_wait_ms=200",
                         "--host=127.0.0.1"};
  auto server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = dserve::v1::DiffusionService::NewStub((*server)->channel());
  auto model = DefaultModel(*stub);
  ASSERT_TRUE(model.ok()) << model.status();

  constexpr int kCalls = 4;
  std::vector<dserve::v1::GenerateRequest> requests;
  for (int i = 0; i < kCalls; ++i) {
    dserve::v1::GenerateRequest r = SmallRequest(*model, 32, 3);
    r.set_seed(1000 + 17 * i);
    if (i % 2 == 1) r.set_prompt("a green square on a white floor");
    requests.push_back(r);
  }

  std::vector<GenerateOutcome> batched(kCalls);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kCalls; ++i) {
      threads.emplace_back([&, i] {
        batched[i] = GenerateToEnd(*stub, requests[i], absl::Seconds(120));
      });
    }
    for (auto& t : threads) t.join();
  }
  int largest_batch = 0;
  for (int i = 0; i < kCalls; ++i) {
    SCOPED_TRACE(absl::StrCat("call ", i));
    ASSERT_TRUE(batched[i].status.ok()) << batched[i].status.error_message();
    ASSERT_NE(batched[i].result(), nullptr);
    EXPECT_EQ(batched[i].result()->seed(), requests[i].seed());
    largest_batch = std::max(largest_batch, StartedBatchSize(batched[i]));
  }
  EXPECT_GT(largest_batch, 1)
      << "four concurrent compatible calls within 200 ms never shared a plan";

  for (int i = 0; i < kCalls; ++i) {
    SCOPED_TRACE(absl::StrCat("call ", i, " alone"));
    GenerateOutcome alone =
        GenerateToEnd(*stub, requests[i], absl::Seconds(120));
    ASSERT_TRUE(alone.status.ok()) << alone.status.error_message();
    EXPECT_EQ(StartedBatchSize(alone), 1);
    ASSERT_NE(alone.result(), nullptr);
    ASSERT_EQ(alone.result()->media_size(), 1);
    ASSERT_EQ(batched[i].result()->media_size(), 1);
    // A batch runs the GEMMs at other shapes, so sums may round
    // differently (~1e-6): the same picture up to one 8-bit level.
    auto solo_image = common::DecodePng(alone.result()->media(0).data());
    auto batch_image = common::DecodePng(batched[i].result()->media(0).data());
    ASSERT_TRUE(solo_image.ok()) << solo_image.status();
    ASSERT_TRUE(batch_image.ok()) << batch_image.status();
    auto diff = common::testing::ComparePixels(*solo_image, *batch_image);
    ASSERT_TRUE(diff.ok()) << diff.status();
    EXPECT_TRUE(common::testing::SamePictureUpToRounding(*diff))
        << "the image of call " << i << " (seed " << requests[i].seed()
        << ") changed when it ran in a batch of "
        << StartedBatchSize(batched[i]) << ": max |diff| " << diff->max_abs
        << ", " << diff->differing << " of " << diff->total << " bytes";
  }
  // Different seeds give different images (the comparison above is not
  // comparing one shared picture).
  EXPECT_NE(batched[0].result()->media(0).data(),
            batched[2].result()->media(0).data());

  absl::StatusOr<int> code = (*server)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace dserve::tests
