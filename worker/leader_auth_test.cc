// SecretCheckedLeader over a real loopback gRPC server: calls without the
// replica's secret never reach the wrapped leader (issue 16, finding 6: a
// local caller ran a 250-step plan beyond --max_steps).

#include "worker/leader_auth.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/replica_secret.h"
#include "gtest/gtest.h"
#include "worker/execute_reactor.h"
#include "worker/plan_queue.h"

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionEvent;
using ::dserve::internal::v1::ExecutionPlan;
using ::dserve::internal::v1::GetStatusRequest;
using ::dserve::internal::v1::ReplicaLeader;
using ::dserve::internal::v1::ReplicaStatus;

// Stands in for the real leader: counts the calls that reach it and runs
// every plan "to the end" (one step event per step).
class RecordingLeader final : public ReplicaLeader::CallbackService {
 public:
  grpc::ServerWriteReactor<ExecutionEvent>* Execute(
      grpc::CallbackServerContext*, const ExecutionPlan* plan) override {
    ++executes;
    steps_run += plan->num_inference_steps();
    auto call = std::make_shared<PlanCall>(*plan);
    ExecutionEvent event;
    event.mutable_step()->set_step(plan->num_inference_steps());
    call->Push(event);
    call->Finish(absl::OkStatus());
    return StartExecuteReactor(call);
  }
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const GetStatusRequest*,
                                      ReplicaStatus* response) override {
    ++statuses;
    response->set_world_size(1);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  std::atomic<int> executes{0};
  std::atomic<int> steps_run{0};
  std::atomic<int> statuses{0};
};

class LeaderAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> secret = common::NewReplicaSecret();
    ASSERT_TRUE(secret.ok()) << secret.status();
    secret_ = *secret;
    checked_ = std::make_unique<SecretCheckedLeader>(&inner_, secret_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(checked_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = ReplicaLeader::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(); }

  // Execute of a 250-step plan; `secrets` are sent as metadata values.
  grpc::Status Execute(const std::vector<std::string>& secrets) {
    ExecutionPlan plan;
    plan.set_width(64);
    plan.set_height(64);
    plan.set_num_frames(1);
    plan.set_num_inference_steps(250);  // Beyond the server's --max_steps.
    plan.add_items()->set_job_id("j-intruder");
    grpc::ClientContext context;
    for (const std::string& s : secrets) {
      context.AddMetadata(common::kReplicaSecretMetadata, s);
    }
    auto reader = stub_->Execute(&context, plan);
    ExecutionEvent event;
    while (reader->Read(&event)) {
    }
    return reader->Finish();
  }

  grpc::Status Status(const std::vector<std::string>& secrets) {
    grpc::ClientContext context;
    for (const std::string& s : secrets) {
      context.AddMetadata(common::kReplicaSecretMetadata, s);
    }
    ReplicaStatus status;
    return stub_->GetStatus(&context, GetStatusRequest(), &status);
  }

  RecordingLeader inner_;
  std::string secret_;
  std::unique_ptr<SecretCheckedLeader> checked_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ReplicaLeader::Stub> stub_;
};

TEST_F(LeaderAuthTest, ExecuteWithoutTheSecretIsUnauthenticatedAndNeverRuns) {
  const std::string wrong = std::string(secret_.size(), '0');
  const std::string prefix = secret_.substr(0, secret_.size() - 1);
  for (const std::vector<std::string>& sent :
       std::vector<std::vector<std::string>>{
           {}, {""}, {wrong}, {prefix}, {secret_ + "x"}, {wrong, secret_}}) {
    const grpc::Status status = Execute(sent);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << sent.size() << " value(s): " << status.error_message();
    EXPECT_EQ(status.error_message().find(secret_), std::string::npos);
  }
  EXPECT_EQ(inner_.executes.load(), 0);
  EXPECT_EQ(inner_.steps_run.load(), 0);
}

TEST_F(LeaderAuthTest, GetStatusWithoutTheSecretIsUnauthenticated) {
  EXPECT_EQ(Status({}).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Status({"nope"}).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(inner_.statuses.load(), 0);
}

TEST_F(LeaderAuthTest, TheFrontendsSecretReachesTheLeader) {
  EXPECT_TRUE(Status({secret_}).ok());
  EXPECT_EQ(inner_.statuses.load(), 1);
  const grpc::Status status = Execute({secret_});
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(inner_.executes.load(), 1);
  EXPECT_EQ(inner_.steps_run.load(), 250);
}

}  // namespace
}  // namespace dserve::worker
