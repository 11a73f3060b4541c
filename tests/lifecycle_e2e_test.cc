// The server's life as an orchestrator sees it: health stays NOT_SERVING
// until every replica's workers are up, then SERVING; SIGTERM stops
// admission, lets the job in flight finish, and exits 0.

#include <signal.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include <grpcpp/client_context.h>

#include "common/png.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {
namespace {

using grpc::health::v1::HealthCheckResponse;
using ::testing::ElementsAre;

TEST(LifecycleE2eTest, HealthGoesNotServingThenServing) {
  ServerProcess::Options options;
  options.wait_until_serving = false;
  auto server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  std::vector<HealthStatus> observed;
  absl::Status serving = (*server)->WaitForHealth(
      HealthCheckResponse::SERVING, absl::Seconds(180), &observed);
  ASSERT_TRUE(serving.ok()) << serving;
  // The listener opens before the replicas are ready, so a prober must see
  // NOT_SERVING first; SERVING only once they are.
  EXPECT_THAT(observed, ElementsAre(HealthCheckResponse::NOT_SERVING,
                                    HealthCheckResponse::SERVING));

  absl::StatusOr<int> code = (*server)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

// True once the server says it is draining, or no longer answers at all.
bool DrainingOrGone(Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(2));
  dserve::v1::ServerInfo info;
  const grpc::Status status =
      stub.GetServerInfo(&context, dserve::v1::GetServerInfoRequest(), &info);
  return !status.ok() || info.draining();
}

TEST(LifecycleE2eTest, SigtermFinishesJobInFlightAndExitsZero) {
  auto server = ServerProcess::Start(ServerProcess::Options());
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<dserve::v1::DiffusionService::Stub> stub =
      dserve::v1::DiffusionService::NewStub((*server)->channel());
  auto model = DefaultModel(*stub);
  ASSERT_TRUE(model.ok()) << model.status();

  // A job with enough steps that SIGTERM lands while it runs.
  dserve::v1::GenerateRequest request = SmallRequest(*model, 64, 30);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(120));
  auto reader = stub->Generate(&context, request);
  dserve::v1::GenerateEvent event;
  bool running = false;
  while (!running && reader->Read(&event)) {
    running = event.has_progress() &&
              event.progress().stage() == dserve::v1::PROGRESS_STAGE_DENOISE;
  }
  ASSERT_TRUE(running) << "the job ended before it ran a step";
  ASSERT_LT(event.progress().step(), request.num_inference_steps())
      << "the job was too short to be in flight at SIGTERM";

  ASSERT_TRUE((*server)->Signal(SIGTERM).ok());

  // Admission stops: wait until the server reports draining, then a new
  // request must be refused as UNAVAILABLE (retry elsewhere), not queued.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!DrainingOrGone(*stub) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const GenerateOutcome refused =
      GenerateToEnd(*stub, SmallRequest(*model, 32, 1), absl::Seconds(10));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << refused.status.error_message();
  EXPECT_EQ(refused.result(), nullptr);

  // The job in flight still finishes with its image.
  const dserve::v1::Result* result = nullptr;
  dserve::v1::Result kept;
  while (reader->Read(&event)) {
    if (event.has_result()) {
      kept = event.result();
      result = &kept;
    }
  }
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_code() << ": "
                           << status.error_message();
  ASSERT_NE(result, nullptr);
  ASSERT_EQ(result->media_size(), 1);
  EXPECT_TRUE(common::DecodePng(result->media(0).data()).ok());

  absl::StatusOr<int> code = (*server)->WaitForExit(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace dserve::tests
