// End to end through the real server and worker processes: images come back
// as valid PNGs of the requested size, seeds are reproducible, events arrive
// in order, concurrent clients spread over replicas, and the server answers
// reflection and info calls.

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/client_context.h>
#include <grpcpp/support/sync_stream.h>

#include "common/png.h"
#include "gmock/gmock.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {
namespace {

using dserve::v1::GenerateEvent;
using ::testing::Contains;
using ::testing::Ge;

constexpr absl::Duration kShortJobTimeout = absl::Seconds(60);

class GenerateE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerProcess::Options options;
    options.replicas = 2;
    options.queue_capacity = 8;
    auto server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    stub_ = dserve::v1::DiffusionService::NewStub(server_->channel()).release();
    auto model = DefaultModel(*stub_);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = new dserve::v1::ModelInfo(*model);
  }

  static void TearDownTestSuite() {
    delete stub_;
    stub_ = nullptr;
    if (server_ != nullptr) {
      absl::StatusOr<int> code = server_->Stop();
      EXPECT_TRUE(code.ok()) << code.status();
      if (code.ok()) {
        EXPECT_EQ(*code, 0) << "server exit code after SIGTERM";
      }
    }
    delete server_;
    server_ = nullptr;
    delete model_;
    model_ = nullptr;
  }

  void SetUp() override {
    // A failed SetUpTestSuite leaves nothing to test against.
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(model_, nullptr);
  }

  static ServerProcess* server_;
  static dserve::v1::DiffusionService::Stub* stub_;
  static dserve::v1::ModelInfo* model_;
};

ServerProcess* GenerateE2eTest::server_ = nullptr;
dserve::v1::DiffusionService::Stub* GenerateE2eTest::stub_ = nullptr;
dserve::v1::ModelInfo* GenerateE2eTest::model_ = nullptr;

TEST_F(GenerateE2eTest, PngDecodesAndHasRequestedSize) {
  dserve::v1::GenerateRequest request = SmallRequest(*model_, 32, 2);
  // Different width and height catch a transposed image.
  request.set_width(2 * request.height());
  ASSERT_LE(request.width(), model_->max_width());
  const GenerateOutcome outcome =
      GenerateToEnd(*stub_, request, kShortJobTimeout);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  const dserve::v1::Result* result = outcome.result();
  ASSERT_NE(result, nullptr);
  ASSERT_EQ(result->media_size(), 1);
  const dserve::v1::Media& media = result->media(0);
  EXPECT_EQ(media.mime_type(), "image/png");
  EXPECT_EQ(media.width(), request.width());
  EXPECT_EQ(media.height(), request.height());
  absl::StatusOr<common::DecodedImage> png = common::DecodePng(media.data());
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(png->width, request.width());
  EXPECT_EQ(png->height, request.height());
  EXPECT_EQ(result->seed(), request.seed());
  EXPECT_EQ(result->effective_request().num_inference_steps(), 2);
}

TEST_F(GenerateE2eTest, EventsArriveInDataPathOrder) {
  const dserve::v1::GenerateRequest request = SmallRequest(*model_, 32, 3);
  const GenerateOutcome outcome =
      GenerateToEnd(*stub_, request, kShortJobTimeout);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  // Queued, Started, Progress ENCODE 0/3, DENOISE 1/3..3/3, DECODE 0/1 and
  // 1/1 (the built-in model decodes in one chunk), Result.
  std::vector<GenerateEvent::EventCase> kinds;
  std::vector<std::string> progress;
  double last_elapsed_ms = 0;
  for (const GenerateEvent& event : outcome.events) {
    EXPECT_EQ(event.job_id(), outcome.job_id());
    kinds.push_back(event.event_case());
    if (event.has_progress()) {
      const dserve::v1::Progress& p = event.progress();
      progress.push_back(dserve::v1::ProgressStage_Name(p.stage()) + " " +
                         std::to_string(p.step()) + "/" +
                         std::to_string(p.total()));
      EXPECT_GE(p.elapsed_ms(), last_elapsed_ms);
      last_elapsed_ms = p.elapsed_ms();
    }
  }
  ASSERT_FALSE(outcome.job_id().empty());
  ASSERT_EQ(kinds.size(), 9u);
  EXPECT_EQ(kinds[0], GenerateEvent::kQueued);
  EXPECT_EQ(kinds[1], GenerateEvent::kStarted);
  EXPECT_EQ(kinds[8], GenerateEvent::kResult);
  EXPECT_EQ(progress,
            (std::vector<std::string>{
                "PROGRESS_STAGE_ENCODE 0/3", "PROGRESS_STAGE_DENOISE 1/3",
                "PROGRESS_STAGE_DENOISE 2/3", "PROGRESS_STAGE_DENOISE 3/3",
                "PROGRESS_STAGE_DECODE 0/1", "PROGRESS_STAGE_DECODE 1/1"}));
  EXPECT_THAT(outcome.replica(), ::testing::AllOf(Ge(0), ::testing::Lt(2)));
  // The finished job is visible through the job API too.
  absl::StatusOr<dserve::v1::Job> job = GetJob(*stub_, outcome.job_id());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job->step(), 3);
  EXPECT_EQ(job->replica(), outcome.replica());
}

TEST_F(GenerateE2eTest, SameSeedGivesByteIdenticalImages) {
  dserve::v1::GenerateRequest request = SmallRequest(*model_, 32, 2);
  request.set_seed(1234);
  request.set_guidance_scale(3.0f);  // exercise the CFG path too
  const GenerateOutcome first = GenerateToEnd(*stub_, request, kShortJobTimeout);
  const GenerateOutcome second =
      GenerateToEnd(*stub_, request, kShortJobTimeout);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  ASSERT_NE(first.result(), nullptr);
  ASSERT_NE(second.result(), nullptr);
  EXPECT_EQ(first.result()->media(0).data(), second.result()->media(0).data());

  // A different seed must change the picture, or the equality above proves
  // nothing.
  request.set_seed(1235);
  const GenerateOutcome other = GenerateToEnd(*stub_, request, kShortJobTimeout);
  ASSERT_TRUE(other.status.ok()) << other.status.error_message();
  ASSERT_NE(other.result(), nullptr);
  EXPECT_NE(first.result()->media(0).data(), other.result()->media(0).data());
}

TEST_F(GenerateE2eTest, UnsetSeedIsPickedReportedAndReproducible) {
  dserve::v1::GenerateRequest request = SmallRequest(*model_, 32, 2);
  request.clear_seed();
  const GenerateOutcome picked =
      GenerateToEnd(*stub_, request, kShortJobTimeout);
  ASSERT_TRUE(picked.status.ok()) << picked.status.error_message();
  ASSERT_NE(picked.result(), nullptr);
  const uint64_t seed = picked.result()->seed();
  EXPECT_TRUE(picked.result()->effective_request().has_seed());
  EXPECT_EQ(picked.result()->effective_request().seed(), seed);

  request.set_seed(seed);
  const GenerateOutcome again = GenerateToEnd(*stub_, request, kShortJobTimeout);
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  ASSERT_NE(again.result(), nullptr);
  EXPECT_EQ(again.result()->media(0).data(),
            picked.result()->media(0).data());
}

// Reads one Generate stream on its own thread until it sees Started, then
// keeps the call open until Cancel() so the job stays on its replica.
class RunningCall {
 public:
  RunningCall(dserve::v1::DiffusionService::Stub* stub,
              const dserve::v1::GenerateRequest& request) {
    reader_ = stub->Generate(&context_, request);
  }

  // Blocks until the first Progress event (the job is running) and returns
  // Started.replica, or nullopt if the stream ended first.
  std::optional<int> WaitUntilRunning() {
    GenerateEvent event;
    std::optional<int> replica;
    while (reader_->Read(&event)) {
      if (event.has_started()) replica = event.started().replica();
      if (event.has_progress()) return replica;
      if (event.has_result()) break;
    }
    return std::nullopt;
  }

  void Cancel() {
    context_.TryCancel();
    GenerateEvent event;
    while (reader_->Read(&event)) {
    }
    status_ = reader_->Finish();
  }

  const grpc::Status& status() const { return status_; }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderInterface<GenerateEvent>> reader_;
  grpc::Status status_;
};

TEST_F(GenerateE2eTest, TwoConcurrentClientsRunOnDifferentReplicas) {
  // Each job is long enough that the first still runs when the second
  // starts; the only idle replica left for the second is the other one.
  RunningCall first(stub_, LongRequest(*model_));
  const std::optional<int> first_replica = first.WaitUntilRunning();
  ASSERT_TRUE(first_replica.has_value());
  RunningCall second(stub_, LongRequest(*model_));
  const std::optional<int> second_replica = second.WaitUntilRunning();
  ASSERT_TRUE(second_replica.has_value());
  EXPECT_NE(*first_replica, *second_replica);
  first.Cancel();
  second.Cancel();
  EXPECT_EQ(first.status().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(second.status().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(GenerateE2eTest, ReflectionListsTheService) {
  std::unique_ptr<grpc::reflection::v1alpha::ServerReflection::Stub> stub =
      grpc::reflection::v1alpha::ServerReflection::NewStub(server_->channel());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names, Contains("dserve.v1.DiffusionService"));
  EXPECT_THAT(names, Contains("grpc.health.v1.Health"));
  while (stream->Read(&response)) {
  }
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(GenerateE2eTest, ServerInfoDescribesReplicasAndQueue) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  dserve::v1::ServerInfo info;
  const grpc::Status status =
      stub_->GetServerInfo(&context, dserve::v1::GetServerInfoRequest(), &info);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(info.mesh().dp(), 2);
  ASSERT_EQ(info.replicas_size(), 2);
  std::set<int> indices;
  for (const dserve::v1::ReplicaInfo& replica : info.replicas()) {
    indices.insert(replica.index());
    EXPECT_GE(replica.world_size(), 1);
    // Worker pids and leader addresses are internal: hidden unless the
    // server runs with --expose_internals (internal_surfaces_e2e_test).
    EXPECT_EQ(replica.pids_size(), 0);
    EXPECT_TRUE(replica.leader_address().empty());
  }
  EXPECT_EQ(indices, (std::set<int>{0, 1}));
  EXPECT_EQ(info.queue_capacity(), 8);
  EXPECT_FALSE(info.draining());
  EXPECT_EQ(info.default_model(), model_->name());
}

}  // namespace
}  // namespace dserve::tests
