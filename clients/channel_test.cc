#include "clients/channel.h"

#include <atomic>
#include <memory>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "grpcpp/grpcpp.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"

namespace dserve::clients {
namespace {

// Answers GetServerInfo with UNAVAILABLE `failures` times, then OK;
// ListModels always with INVALID_ARGUMENT.
class FlakyService final : public dserve::v1::DiffusionService::Service {
 public:
  explicit FlakyService(int failures) : failures_(failures) {}
  grpc::Status GetServerInfo(grpc::ServerContext*,
                             const dserve::v1::GetServerInfoRequest*,
                             dserve::v1::ServerInfo* info) override {
    if (info_calls_.fetch_add(1) < failures_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
    }
    info->set_version("ok");
    return grpc::Status::OK;
  }
  grpc::Status ListModels(grpc::ServerContext*,
                          const dserve::v1::ListModelsRequest*,
                          dserve::v1::ListModelsResponse*) override {
    ++models_calls_;
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad");
  }
  const int failures_;
  std::atomic<int> info_calls_{0};
  std::atomic<int> models_calls_{0};
};

struct Fixture {
  explicit Fixture(int failures) : service(failures) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    stub = dserve::v1::DiffusionService::NewStub(CreateDserveChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  ~Fixture() { server->Shutdown(); }
  FlakyService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<dserve::v1::DiffusionService::Stub> stub;
};

grpc::Status Info(Fixture& f, dserve::v1::ServerInfo* info) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  return f.stub->GetServerInfo(&context, {}, info);
}

TEST(CreateDserveChannelTest, UnavailableIsRetriedUntilItSucceeds) {
  Fixture f(/*failures=*/2);
  dserve::v1::ServerInfo info;
  const grpc::Status status = Info(f, &info);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(info.version(), "ok");
  EXPECT_EQ(f.service.info_calls_.load(), 3);
}

TEST(CreateDserveChannelTest, GivesUpAfterFiveAttempts) {
  Fixture f(/*failures=*/100);
  dserve::v1::ServerInfo info;
  EXPECT_EQ(Info(f, &info).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(f.service.info_calls_.load(), 5);
}

TEST(CreateDserveChannelTest, OtherCodesAreNotRetried) {
  Fixture f(0);
  grpc::ClientContext context;
  dserve::v1::ListModelsResponse models;
  EXPECT_EQ(f.stub->ListModels(&context, {}, &models).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(f.service.models_calls_.load(), 1);
}

TEST(NewClientRequestIdTest, ShortUniqueAndUrlSafe) {
  const std::string a = NewClientRequestId();
  EXPECT_EQ(a.size(), 20u);
  EXPECT_EQ(a.find_first_not_of("cli-0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, NewClientRequestId());
}

}  // namespace
}  // namespace dserve::clients
