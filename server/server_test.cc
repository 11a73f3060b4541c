#include "server/server.h"

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "scheduler/testing/fake_replica.h"
#include "server/testing/service_fixtures.h"

namespace dserve::server {
namespace {

using ::dserve::server::testing::Eventually;
using ::dserve::server::testing::TinyModel;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;
using scheduler::testing::FakeReplica;

// A Server on 127.0.0.1:<any port> serving one FakeReplica.
class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    replica_.SetModels({TinyModel()});
    Server::Options options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.replica_handles = {&replica_};
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::BuildAndStart(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                            grpc::InsecureChannelCredentials());
    health_ = grpc::health::v1::Health::NewStub(channel);
    stub_ = dserve::v1::DiffusionService::NewStub(channel);
  }

  HealthCheckResponse::ServingStatus Health() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    HealthCheckRequest request;
    HealthCheckResponse response;
    const grpc::Status status = health_->Check(&context, request, &response);
    if (!status.ok()) return HealthCheckResponse::UNKNOWN;
    return response.status();
  }

  grpc::Status Submit(dserve::v1::Job* job) {
    grpc::ClientContext context;
    dserve::v1::SubmitJobRequest request;
    request.mutable_request()->set_prompt("a red square");
    return stub_->SubmitJob(&context, request, job);
  }

  FakeReplica replica_{0};
  std::unique_ptr<Server> server_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::unique_ptr<dserve::v1::DiffusionService::Stub> stub_;
};

TEST_F(ServerTest, HealthFollowsTheReplicas) {
  EXPECT_TRUE(Eventually(
      [&] { return Health() == HealthCheckResponse::SERVING; }));
  replica_.SetState(dserve::v1::REPLICA_STATE_FAILED);
  EXPECT_TRUE(Eventually(
      [&] { return Health() == HealthCheckResponse::NOT_SERVING; }));
}

TEST_F(ServerTest, IdleDrainReturnsPromptly) {
  ASSERT_TRUE(Eventually(
      [&] { return Health() == HealthCheckResponse::SERVING; }));
  const absl::Time start = absl::Now();
  server_->Drain(absl::Seconds(30));
  server_->Wait();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  // The port is closed.
  EXPECT_EQ(Health(), HealthCheckResponse::UNKNOWN);
}

TEST_F(ServerTest, DrainStopsNewWorkAndLetsRunningJobsFinish) {
  ASSERT_TRUE(Eventually(
      [&] { return Health() == HealthCheckResponse::SERVING; }));
  dserve::v1::Job running;
  ASSERT_TRUE(Submit(&running).ok());
  ASSERT_TRUE(Eventually([&] { return replica_.running(); }));

  absl::Notification drained;
  std::thread drainer([&] {
    server_->Drain(absl::Seconds(30));
    drained.Notify();
  });
  // Health goes NOT_SERVING, then every connection gets a GOAWAY and the
  // listener closes: a new call on the open channel no longer reaches this
  // server (behind a Service it would open a connection to another pod);
  // here, with nowhere else to go, it is UNAVAILABLE, which the clients'
  // retry policy retries. A call crossing the GOAWAY on the wire may end
  // CANCELLED instead (gRPC's shutdown race), hence Eventually.
  EXPECT_TRUE(Eventually([&] {
    return Health() != HealthCheckResponse::SERVING;
  }));
  EXPECT_TRUE(Eventually([&] {
    dserve::v1::Job refused;
    return Submit(&refused).error_code() == grpc::StatusCode::UNAVAILABLE;
  }));
  // The running job holds the drain open until it ends.
  EXPECT_FALSE(drained.WaitForNotificationWithTimeout(absl::Milliseconds(300)));
  replica_.Complete();
  EXPECT_TRUE(drained.WaitForNotificationWithTimeout(absl::Seconds(10)));
  drainer.join();
  server_->Wait();
}

TEST_F(ServerTest, GracePeriodOverCancelsTheRunningJob) {
  ASSERT_TRUE(Eventually(
      [&] { return Health() == HealthCheckResponse::SERVING; }));
  dserve::v1::Job running;
  ASSERT_TRUE(Submit(&running).ok());
  ASSERT_TRUE(Eventually([&] { return replica_.running(); }));
  std::thread drainer([&] { server_->Drain(absl::Milliseconds(100)); });
  // The replica is told to stop; it ends the plan as a real one would.
  ASSERT_TRUE(Eventually([&] { return replica_.cancel_requested(); }));
  replica_.EndWith(absl::CancelledError("stopped at a step boundary"));
  drainer.join();
  server_->Wait();
}

TEST(ServerOptionsTest, BadSettingNamesTheFlag) {
  Server::Options options;
  options.port = 70000;
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::BuildAndStart(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("--port=70000"));

  options.port = 0;
  options.replicas = 2;
  options.mesh = "dp=3";
  server = Server::BuildAndStart(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("disagree"));

  options.replicas = 1;
  options.mesh = "";
  options.sp_compression_exact_steps = 0;
  server = Server::BuildAndStart(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(),
              HasSubstr("--sp_compression_exact_steps=0"));
}

TEST(ServerOptionsTest, InjectedReplicasMustMatchDp) {
  FakeReplica replica(0);
  Server::Options options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.replicas = 2;
  options.replica_handles = {&replica};
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::BuildAndStart(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("replica_handles"));
}

// --max_connection_age_s: the server sends GOAWAY to an older connection, so
// the client's channel leaves READY (its next call opens a new connection,
// behind a load balancer possibly to another pod); without it the
// connection stays.
TEST(ServerConnectionAgeTest, OldConnectionsGetGoaway) {
  for (const int age_s : {0, 1}) {
    FakeReplica replica(0);
    replica.SetModels({TinyModel()});
    Server::Options options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.max_connection_age_s = age_s;
    options.replica_handles = {&replica};
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::BuildAndStart(options);
    ASSERT_TRUE(server.ok()) << server.status();
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                            grpc::InsecureChannelCredentials());
    ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                          std::chrono::seconds(10)));
    // Age 1 s (+ gRPC's 10 % jitter): GOAWAY within ~1.1 s.
    const bool left_ready = Eventually([&] {
      return channel->GetState(false) != GRPC_CHANNEL_READY;
    });
    EXPECT_EQ(left_ready, age_s > 0) << "max_connection_age_s=" << age_s;
    (*server)->Drain(absl::ZeroDuration());
  }
}

TEST(ServerOptionsTest, MaxConnectionAgeIsChecked) {
  Server::Options options;
  options.max_connection_age_s = -1;
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::BuildAndStart(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("--max_connection_age_s=-1"));
}

}  // namespace
}  // namespace dserve::server
