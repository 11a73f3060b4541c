// HttpApi inside a real Server (FakeReplica behind it): the HTTP API and the
// gRPC API share one job table, one validator and one queue.
#include "server/http_api.h"

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "scheduler/testing/fake_replica.h"
#include "server/testing/service_fixtures.h"
#include "server/server.h"

namespace dserve::server {
namespace {

using ::dserve::server::testing::Eventually;
using ::testing::HasSubstr;
using json = nlohmann::json;
using scheduler::testing::FakeReplica;

dserve::v1::ModelInfo TinyModel() {
  dserve::v1::ModelInfo m;
  m.set_name("tiny");
  m.set_is_default(true);
  m.set_default_width(32);
  m.set_default_height(32);
  m.set_max_width(128);
  m.set_max_height(128);
  m.set_size_step(16);
  m.set_max_frames(1);
  m.set_frame_step(1);
  m.set_default_steps(3);
  m.set_max_steps(50);
  m.set_default_guidance_scale(3.0f);
  m.set_max_guidance_scale(50.0f);
  m.set_default_flow_shift(3.0f);
  m.set_min_flow_shift(0.1f);
  m.set_max_flow_shift(20.0f);
  m.set_max_prompt_tokens(64);
  m.set_default_fps(8);
  m.set_default_frames(1);
  return m;
}

class HttpApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    replica_.SetModels({TinyModel()});
    Server::Options options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.http_port = -1;
    options.replica_handles = {&replica_};
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::BuildAndStart(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->http_port(), 0);
    http_ = std::make_unique<httplib::Client>("127.0.0.1",
                                              server_->http_port());
    stub_ = dserve::v1::DiffusionService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()),
        grpc::InsecureChannelCredentials()));
    ASSERT_TRUE(Eventually([&] {
      auto r = http_->Get("/ready");
      return r && r->status == 200;
    }));
  }

  FakeReplica replica_{0};
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> http_;
  std::unique_ptr<dserve::v1::DiffusionService::Stub> stub_;
};

TEST_F(HttpApiTest, AVideoJobIsAGrpcJob) {
  auto r = http_->Post("/v1/videos",
                       R"({"prompt": "a red square", "size": "32x16",
                           "num_frames": 1, "seed": 4})",
                       "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json video = json::parse(r->body);
  EXPECT_EQ(video["object"], "video");
  const std::string id = video["id"];

  grpc::ClientContext context;
  dserve::v1::GetJobRequest get;
  get.set_job_id(id);
  dserve::v1::Job job;
  ASSERT_TRUE(stub_->GetJob(&context, get, &job).ok());
  EXPECT_EQ(job.request().prompt(), "a red square");
  EXPECT_EQ(job.request().width(), 32);
  EXPECT_EQ(job.request().height(), 16);
  EXPECT_EQ(job.request().seed(), 4u);
  EXPECT_EQ(job.request().output_format(), dserve::v1::OUTPUT_FORMAT_MP4);

  // Cancelled over gRPC while it runs, seen over HTTP.
  ASSERT_TRUE(Eventually([&] { return replica_.running(); }));
  grpc::ClientContext cancel_context;
  dserve::v1::CancelJobRequest cancel;
  cancel.set_job_id(id);
  ASSERT_TRUE(stub_->CancelJob(&cancel_context, cancel, &job).ok());
  // The fake replica plays the worker stopping at its step boundary.
  ASSERT_TRUE(Eventually([&] { return replica_.cancel_requested(); }));
  replica_.EndWith(absl::CancelledError("stopped at a step boundary"));
  ASSERT_TRUE(Eventually([&] {
    auto g = http_->Get(absl::StrCat("/v1/videos/", id));
    return g && g->status == 200 &&
           json::parse(g->body)["status"] == "failed";
  }));
}

TEST_F(HttpApiTest, SameValidatorAndMessageAsGrpc) {
  grpc::ClientContext context;
  dserve::v1::SubmitJobRequest submit;
  submit.mutable_request()->set_prompt("a red square");
  submit.mutable_request()->set_width(17);
  dserve::v1::Job job;
  const grpc::Status grpc_status = stub_->SubmitJob(&context, submit, &job);
  ASSERT_EQ(grpc_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  auto r = http_->Post("/v1/images/generations",
                       R"({"prompt": "a red square", "size": "17x32"})",
                       "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  const json error = json::parse(r->body)["error"];
  EXPECT_EQ(error["message"], grpc_status.error_message());
  EXPECT_EQ(error["type"], "invalid_request_error");
  EXPECT_EQ(error["code"], "invalid_argument");
}

TEST_F(HttpApiTest, ImagesWaitForTheResult) {
  std::thread completer([&] {
    ASSERT_TRUE(Eventually([&] { return replica_.running(); }));
    replica_.Complete();
  });
  auto r = http_->Post("/v1/images/generations",
                       R"({"prompt": "a red square", "seed": 1,
                           "response_format": "b64_json"})",
                       "application/json");
  completer.join();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json body = json::parse(r->body);
  ASSERT_EQ(body["data"].size(), 1u);
  std::string png;
  EXPECT_TRUE(absl::Base64Unescape(body["data"][0]["b64_json"].get<std::string>(),
                                   &png));
  EXPECT_EQ(body["data"][0]["seed"], 1);
  // FakeReplica's media is one byte, the seed.
  EXPECT_EQ(png, std::string(1, '\x01'));
}

// cpp-httplib applies its payload limit to Content-Length bodies only; a
// chunked body is refused before it is read (issue 16, finding 6), and no
// job is made from it.
TEST_F(HttpApiTest, ChunkedBodyIsRefusedUnread) {
  bool sent = false;
  auto r = http_->Post(
      "/v1/images/generations",
      [&sent](size_t /*offset*/, httplib::DataSink& sink) {
        if (!sent) {
          const std::string body = R"({"prompt": "a red square"})";
          sink.write(body.data(), body.size());
          sent = true;
        } else {
          sink.done();
        }
        return true;
      },
      "application/json");
  // The server answers 411 and closes without reading; a client still
  // writing its chunks may see the reply or only the closed connection.
  if (r) {
    EXPECT_EQ(r->status, 411);
    EXPECT_THAT(json::parse(r->body)["error"]["message"].get<std::string>(),
                HasSubstr("chunked"));
  } else {
    EXPECT_TRUE(r.error() == httplib::Error::Write ||
                r.error() == httplib::Error::Read)
        << httplib::to_string(r.error());
  }
  EXPECT_FALSE(replica_.running());
  auto models = http_->Get("/v1/models");
  ASSERT_TRUE(models) << "the server still serves after the refused body";
  EXPECT_EQ(models->status, 200);
}

TEST_F(HttpApiTest, RoutesAndErrors) {
  auto models = http_->Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "tiny");
  auto missing = http_->Get("/v1/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"]["type"], "not_found_error");
  auto bad_json = http_->Post("/v1/images/generations", "{", "application/json");
  ASSERT_TRUE(bad_json);
  EXPECT_EQ(bad_json->status, 400);
  EXPECT_THAT(json::parse(bad_json->body)["error"]["message"].get<std::string>(),
              HasSubstr("not valid JSON"));
}

}  // namespace
}  // namespace dserve::server
