// In-process tests of the ReplicaLeader: a world of one rank (the leader
// alone), a real gRPC server on loopback, and Serve on its own thread.

#include "worker/replica_leader.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/png.h"
#include "common/testing/png_compare.h"
#include "gtest/gtest.h"
#include "parallel/local_communicator.h"
#include "parallel/mesh_layout.h"
#include "worker/models/model_config.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"
#include "worker/rank_loop.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionEvent;
using ::dserve::internal::v1::ExecutionPlan;
using ::dserve::internal::v1::GetStatusRequest;
using ::dserve::internal::v1::ReplicaStatus;

ExecutionPlan Plan(int size, int steps, const std::string& job) {
  ExecutionPlan plan;
  plan.set_width(size);
  plan.set_height(size);
  plan.set_num_frames(1);
  plan.set_num_inference_steps(steps);
  plan.set_flow_shift(1.0f);
  plan.set_output_format(dserve::v1::OUTPUT_FORMAT_PNG);
  auto* item = plan.add_items();
  item->set_job_id(job);
  item->set_prompt("a square");
  item->set_seed(5);
  item->set_guidance_scale(3.0f);
  return plan;
}

class ReplicaLeaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(1);
    models::PipelineConfig config = models::DefaultModelConfig();
    auto pipeline =
        models::Pipeline::Create(config, models::RandomWeights(config, 11));
    ASSERT_TRUE(pipeline.ok()) << pipeline.status();
    pipeline_ = pipeline->release();
  }
  static void TearDownTestSuite() { delete pipeline_; }

  void SetUp() override {
    loop_ = std::make_unique<RankLoop>(*pipeline_, world_);
    ReplicaLeaderOptions options;
    options.replica = 3;
    options.pids = {1234};
    options.heartbeat_interval = absl::Milliseconds(20);
    options.max_pending_plans = 1;
    options.stop_requested = [this] { return stop_.load(); };
    options.parent_alive = [this] { return parent_alive_.load(); };
    leader_ =
        std::make_unique<ReplicaLeader>(*pipeline_, *loop_, world_, options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(leader_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = dserve::internal::v1::ReplicaLeader::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    serve_thread_ = std::thread([this] {
      serve_status_ = leader_->Serve();
      serve_done_.Notify();
    });
  }

  void TearDown() override {
    stop_.store(true);
    serve_thread_.join();
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
  }

  struct Result {
    grpc::Status status;
    std::vector<ExecutionEvent> events;
  };

  // Runs `plan`; `on_step` is called after each StepDone arrives.
  Result Execute(
      const ExecutionPlan& plan,
      const std::function<void(grpc::ClientContext&)>& on_step = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    auto reader = stub_->Execute(&context, plan);
    Result result;
    ExecutionEvent event;
    while (reader->Read(&event)) {
      result.events.push_back(event);
      if (event.has_step() && on_step) on_step(context);
    }
    result.status = reader->Finish();
    return result;
  }

  ReplicaStatus Status() {
    grpc::ClientContext context;
    ReplicaStatus status;
    EXPECT_TRUE(stub_->GetStatus(&context, GetStatusRequest(), &status).ok());
    return status;
  }

  static models::Pipeline* pipeline_;
  parallel::LocalCommunicator world_;
  std::unique_ptr<RankLoop> loop_;
  std::unique_ptr<ReplicaLeader> leader_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<dserve::internal::v1::ReplicaLeader::Stub> stub_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> parent_alive_{true};
  std::thread serve_thread_;
  absl::Status serve_status_;
  absl::Notification serve_done_;
};

models::Pipeline* ReplicaLeaderTest::pipeline_ = nullptr;

TEST_F(ReplicaLeaderTest, StatusDescribesTheReplica) {
  const ReplicaStatus status = Status();
  EXPECT_EQ(status.world_size(), 1);
  EXPECT_EQ(parallel::FormatMeshSpec(
                parallel::MeshDegreesFromLayout(status.mesh()).value()),
            "dp=1,cfg=1,ring=1,ulysses=1,pp=1,tp=1");
  EXPECT_EQ(status.mesh().tp(), 1);  // set, not left at 0
  ASSERT_EQ(status.pids_size(), 1);
  EXPECT_EQ(status.pids(0), 1234);
  ASSERT_EQ(status.models_size(), 1);
  EXPECT_EQ(status.models(0).name(), pipeline_->config().name);
  EXPECT_FALSE(status.busy());
}

// A video job's preview is one PNG of the video's size: the first frame of
// the current x0 estimate. At the last step that estimate is the final
// sample, so the preview is the result's frame 0 (up to float rounding) and
// not another frame.
TEST_F(ReplicaLeaderTest, VideoPreviewIsTheFirstFrameAsPng) {
  ExecutionPlan plan = Plan(16, 3, "video");
  plan.set_num_frames(5);
  plan.mutable_items(0)->set_preview_every_n_steps(1);
  Result r = Execute(plan);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  std::vector<std::string> previews;
  for (const ExecutionEvent& e : r.events) {
    if (!e.has_step()) {
      continue;
    }
    ASSERT_EQ(e.step().previews_size(), 1) << "step " << e.step().step();
    const dserve::v1::Media& preview = e.step().previews().at("video");
    EXPECT_EQ(preview.mime_type(), "image/png");
    EXPECT_EQ(preview.width(), 16);
    EXPECT_EQ(preview.height(), 16);
    absl::StatusOr<common::DecodedImage> png =
        common::DecodePng(preview.data());
    ASSERT_TRUE(png.ok()) << png.status();
    EXPECT_EQ(png->width, 16);
    EXPECT_EQ(png->height, 16);
    previews.push_back(preview.data());
  }
  ASSERT_EQ(previews.size(), 3u);
  const auto& media = r.events.back().done().items(0).media();
  ASSERT_EQ(media.size(), 5);
  auto last = common::DecodePng(previews.back());
  auto first_frame = common::DecodePng(media[0].data());
  auto last_frame = common::DecodePng(media[4].data());
  ASSERT_TRUE(last.ok() && first_frame.ok() && last_frame.ok());
  auto same = common::testing::ComparePixels(*last, *first_frame);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_LE(same->max_abs, 1) << same->differing << " bytes differ";
  auto other = common::testing::ComparePixels(*last, *last_frame);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_GT(other->max_abs, 1) << "frames 0 and 4 should differ";
}

TEST_F(ReplicaLeaderTest, RawTensorPlanMatchesTheDecodedPixels) {
  ExecutionPlan plan = Plan(16, 2, "raw");
  plan.set_output_format(dserve::v1::OUTPUT_FORMAT_RAW_TENSOR);
  Result r = Execute(plan);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  // ENCODE, 2 steps, DECODE 0/1 and 1/1, PlanDone.
  ASSERT_EQ(r.events.size(), 6u);
  const auto& done = r.events.back().done();
  ASSERT_EQ(done.items_size(), 1);
  EXPECT_EQ(done.items(0).job_id(), "raw");
  ASSERT_EQ(done.items(0).media_size(), 1);
  const auto& media = done.items(0).media(0);
  EXPECT_EQ(media.mime_type(), "application/x-dserve-f32");
  ASSERT_EQ(media.shape_size(), 4);
  ASSERT_EQ(media.data().size(), 16u * 16 * 3 * sizeof(float));
  EXPECT_GT(done.denoise_ms(), 0.0);

  // The same plan run directly through the pipeline gives the same floats.
  absl::StatusOr<models::GenerationSpec> spec = loop_->ResolveSpec(plan);
  ASSERT_TRUE(spec.ok());
  auto state = pipeline_->Prepare(*spec);
  ASSERT_TRUE(state.ok());
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(pipeline_->Step(*state).ok());
  at::Tensor expected = pipeline_->Decode(*state)[0].contiguous();
  at::Tensor got = at::empty_like(expected);
  std::memcpy(got.data_ptr(), media.data().data(), media.data().size());
  EXPECT_TRUE(at::equal(got, expected.clamp(0.0, 1.0)));
}

TEST_F(ReplicaLeaderTest, RejectsUnknownModelAndUnsupportedFormat) {
  ExecutionPlan plan = Plan(16, 2, "x");
  plan.set_model("nope");
  EXPECT_EQ(Execute(plan).status.error_code(), grpc::StatusCode::NOT_FOUND);
  plan = Plan(16, 2, "x");
  plan.set_output_format(static_cast<dserve::v1::OutputFormat>(7));
  Result r = Execute(plan);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(r.status.error_message().find("output_format=7"), std::string::npos)
      << r.status.error_message();
}

TEST_F(ReplicaLeaderTest, BusyWhileRunningAndFullQueueIsResourceExhausted) {
  // A long plan runs; a second one waits (capacity 1); a third is refused.
  absl::Notification running;
  std::thread long_call([&] {
    bool first = true;
    Result r = Execute(Plan(64, 200, "long"), [&](grpc::ClientContext& c) {
      if (first) running.Notify();
      first = false;
      (void)c;
    });
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << r.status.error_message();
  });
  running.WaitForNotification();
  EXPECT_TRUE(Status().busy());

  absl::Notification queued_done;
  std::thread queued_call([&] {
    Result r = Execute(Plan(16, 2, "queued"));
    // Finished by the stop below without ever running.
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << r.status.error_message();
    EXPECT_TRUE(r.events.empty());
    queued_done.Notify();
  });
  // Wait until the second call sits in the queue.
  for (int i = 0; i < 1000 && leader_->pending_plans() < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(leader_->pending_plans(), 1);
  Result refused = Execute(Plan(16, 2, "refused"));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.status.error_message().find("capacity 1"),
            std::string::npos)
      << refused.status.error_message();

  // SIGTERM: the running plan stops at its next step with UNAVAILABLE (so
  // the scheduler may retry it elsewhere), the queued one is refused, and
  // Serve returns OK.
  stop_.store(true);
  long_call.join();
  queued_call.join();
  ASSERT_TRUE(serve_done_.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(serve_status_.ok()) << serve_status_;
  EXPECT_FALSE(leader_->busy());
  EXPECT_EQ(Execute(Plan(16, 2, "late")).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ReplicaLeaderTest, CancelledCallStopsWithinAStep) {
  int steps = 0;
  Result r = Execute(Plan(64, 200, "c"), [&](grpc::ClientContext& c) {
    if (++steps == 2) c.TryCancel();
  });
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::CANCELLED);
  // The leader is free again soon after, and serves the next plan.
  for (int i = 0; i < 100 && Status().busy(); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(Status().busy());
  EXPECT_TRUE(Execute(Plan(16, 1, "next")).status.ok());
}

TEST_F(ReplicaLeaderTest, ServeFailsWhenTheParentIsGone) {
  parent_alive_.store(false);
  ASSERT_TRUE(serve_done_.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(serve_status_.code(), absl::StatusCode::kAborted) << serve_status_;
  EXPECT_EQ(Execute(Plan(16, 2, "orphan")).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace dserve::worker
