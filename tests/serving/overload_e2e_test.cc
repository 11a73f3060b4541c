// Overload through the real server: 10x more concurrent Generate calls than
// the queue holds. The excess gets RESOURCE_EXHAUSTED at once, everything
// admitted completes, and the server's memory stays bounded (RSS measured
// from /proc before and after several waves).

#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/proc_status.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {
namespace {

constexpr int kQueueCapacity = 3;
constexpr int kClients = 10 * kQueueCapacity;
constexpr int kWaves = 3;

// VmRSS of `pid` in KiB, or -1.
int64_t RssKib(pid_t pid) {
  return common::testing::ProcStatusKib(pid, "VmRSS");
}

TEST(OverloadE2eTest, ExcessIsRefusedAdmittedCompleteMemoryBounded) {
  ServerProcess::Options options;
  options.replicas = 1;
  options.queue_capacity = kQueueCapacity;
  auto server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = dserve::v1::DiffusionService::NewStub((*server)->channel());
  absl::StatusOr<dserve::v1::ModelInfo> model = DefaultModel(*stub);
  ASSERT_TRUE(model.ok()) << model.status();
  const dserve::v1::GenerateRequest request = SmallRequest(*model, 32, 2);

  int64_t rss_after_first_wave = -1;
  for (int wave = 0; wave < kWaves; ++wave) {
    absl::Mutex mu;
    int ok = 0, exhausted = 0, other = 0;
    std::string other_message;
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&] {
        GenerateOutcome outcome =
            GenerateToEnd(*stub, request, absl::Seconds(50));
        absl::MutexLock lock(&mu);
        if (outcome.status.ok()) {
          ++ok;
          EXPECT_NE(outcome.result(), nullptr);
        } else if (outcome.status.error_code() ==
                   grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++exhausted;
          EXPECT_NE(outcome.status.error_message().find("queue is full"),
                    std::string::npos)
              << outcome.status.error_message();
        } else {
          ++other;
          other_message = outcome.status.error_message();
        }
      });
    }
    for (std::thread& t : clients) t.join();
    std::cout << "wave " << wave << ": ok=" << ok
              << " resource_exhausted=" << exhausted << " other=" << other
              << " server RSS " << RssKib((*server)->pid()) << " KiB"
              << std::endl;
    EXPECT_EQ(other, 0) << other_message;
    EXPECT_EQ(ok + exhausted, kClients);
    // At least the queue's worth plus the running job got in; most did not.
    EXPECT_GE(ok, kQueueCapacity);
    EXPECT_GT(exhausted, kClients / 2);
    if (wave == 0) rss_after_first_wave = RssKib((*server)->pid());
  }
  const int64_t rss_end = RssKib((*server)->pid());
  ASSERT_GT(rss_after_first_wave, 0);
  // Later waves reuse what the first allocated: no growth per request
  // beyond allocator noise.
  EXPECT_LT(rss_end - rss_after_first_wave, 32 * 1024)
      << "server RSS grew from " << rss_after_first_wave << " to " << rss_end
      << " KiB over " << kWaves - 1 << " more waves";

  absl::StatusOr<int> code = (*server)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace dserve::tests
