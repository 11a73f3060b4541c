// Metrics and deadlines through the real server and workers:
//  * GET /metrics on --metrics_port answers in the Prometheus text format
//    and counts what happened (jobs by terminal state, latency histograms,
//    replica states);
//  * a running job whose deadline passes stops at the next step with
//    DEADLINE_EXCEEDED (and its replica takes the next job).

#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {
namespace {

using ::testing::HasSubstr;

class MetricsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<int> port = PickFreePort();
    ASSERT_TRUE(port.ok()) << port.status();
    metrics_port_ = *port;
    ServerProcess::Options options;
    options.replicas = 1;
    options.extra_flags = {absl::StrCat("--metrics_port=", metrics_port_),
                           "--host=127.0.0.1"};
    auto server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = dserve::v1::DiffusionService::NewStub(server_->channel());
    auto model = DefaultModel(*stub_);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *model;
  }

  void TearDown() override {
    if (server_ == nullptr) return;
    absl::StatusOr<int> code = server_->Stop();
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0);
  }

  std::string Scrape() {
    httplib::Client client("127.0.0.1", metrics_port_);
    client.set_read_timeout(5, 0);
    auto response = client.Get("/metrics");
    if (!response) return "(no response)";
    EXPECT_EQ(response->status, 200);
    return response->body;
  }

  int metrics_port_ = 0;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<dserve::v1::DiffusionService::Stub> stub_;
  dserve::v1::ModelInfo model_;
};

TEST_F(MetricsE2eTest, DeadlineStopsRunningJobAtNextStepAndMetricsCountIt) {
  const std::string before = Scrape();
  EXPECT_THAT(before, HasSubstr("dserve_replicas{state=\"READY\"} 1\n"));
  EXPECT_THAT(before, HasSubstr("dserve_jobs_total{state=\"SUCCEEDED\"} 0\n"));

  // One job to the end.
  GenerateOutcome ok =
      GenerateToEnd(*stub_, SmallRequest(model_), absl::Seconds(30));
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();

  // A long job with a 3 s deadline: it starts, runs some steps, and must
  // end DEADLINE_EXCEEDED at the step boundary after the deadline.
  const absl::Duration deadline = absl::Seconds(3);
  const absl::Time submitted = absl::Now();
  GenerateOutcome late = GenerateToEnd(*stub_, LongRequest(model_), deadline);
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_FALSE(late.job_id().empty());
  absl::StatusOr<dserve::v1::Job> job = WaitForJob(
      *stub_, late.job_id(),
      [](const dserve::v1::Job& j) { return IsTerminal(j.state()); },
      absl::Seconds(30));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_DEADLINE_EXCEEDED)
      << job->status_message();
  EXPECT_GT(job->step(), 0) << "the job should have been running";
  EXPECT_LT(job->step(), job->total_steps());
  const double run_ms =
      static_cast<double>(job->end_time_ms() - job->start_time_ms());
  const double step_ms = run_ms / std::max(job->step(), 1);
  const double overshoot_ms = absl::ToDoubleMilliseconds(
      absl::FromUnixMillis(job->end_time_ms()) - (submitted + deadline));
  std::cout << "deadline overshoot " << overshoot_ms << " ms; mean step "
            << step_ms << " ms" << std::endl;
  // Ends at the next step boundary: within about one step of the deadline
  // (two mean steps plus slack under CPU-load spikes on 2 shared cores).
  EXPECT_LE(overshoot_ms, 2 * step_ms + 300);

  // The replica is free again: a small job runs.
  GenerateOutcome after =
      GenerateToEnd(*stub_, SmallRequest(model_), absl::Seconds(30));
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();

  const std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("# TYPE dserve_jobs_total counter\n"));
  EXPECT_THAT(text, HasSubstr("dserve_jobs_total{state=\"SUCCEEDED\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("dserve_jobs_total{state=\"DEADLINE_EXCEEDED\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE dserve_job_end_to_end_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("dserve_job_end_to_end_seconds_count 2\n"));
  EXPECT_THAT(text, HasSubstr("dserve_job_queue_wait_seconds_count 2\n"));
  EXPECT_THAT(text, HasSubstr("dserve_step_seconds_count 2\n"));
  EXPECT_THAT(text, HasSubstr("dserve_replica_jobs_completed_total{replica=\"0\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dserve_queue_depth{priority=\"0\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dserve_replica_restarts_total{replica=\"0\"} 0\n"));
  // What alerts use: counters end in _total, buckets reach 1 h for video,
  // running jobs, refusals by code, and which build is running.
  EXPECT_THAT(text, HasSubstr("# TYPE dserve_replica_jobs_completed_total counter\n"));
  EXPECT_THAT(text, HasSubstr("dserve_job_end_to_end_seconds_bucket{le=\"3600\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dserve_jobs_running 0\n"));
  EXPECT_THAT(text, HasSubstr(
      "dserve_requests_rejected_total{code=\"RESOURCE_EXHAUSTED\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dserve_build_info{"));
}

}  // namespace
}  // namespace dserve::tests
