#include "server/serving_metrics.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "scheduler/job.h"
#include "server/metrics_http_server.h"

namespace dserve::server {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<scheduler::Job> MakeJob(const std::string& id) {
  scheduler::JobSpec spec;
  spec.id = id;
  spec.sequence = 1;
  return std::make_shared<scheduler::Job>(spec);
}

TEST(ServingMetricsTest, CountsEachTerminalStateOnceWithLatencies) {
  MetricsRegistry registry;
  ServingMetrics metrics(&registry);
  const absl::Time now = absl::FromUnixSeconds(100);

  auto ok = MakeJob("ok");
  metrics.WatchJob(ok);
  ok->MarkQueued(0);
  ok->MarkStarted(0, dserve::v1::MeshLayout(), 1, now);
  dserve::v1::Result result;
  result.mutable_timings()->set_queue_ms(20);
  result.mutable_timings()->set_text_encode_ms(100);
  result.mutable_timings()->set_denoise_ms(800);
  result.mutable_timings()->set_decode_ms(100);
  result.mutable_timings()->set_total_ms(1020);
  result.mutable_timings()->set_step_ms_mean(40);
  result.mutable_timings()->set_steps_computed(12);
  result.mutable_timings()->set_steps_reused(8);
  ASSERT_TRUE(ok->Succeed(result, now));
  // A second terminal transition is refused and not counted.
  EXPECT_FALSE(ok->Finish(absl::CancelledError("late"), now));

  auto cancelled = MakeJob("cancelled");
  metrics.WatchJob(cancelled);
  cancelled->MarkQueued(0);
  ASSERT_TRUE(cancelled->Finish(absl::CancelledError("by client"), now));

  // Watched after it ended: counted from the replay.
  auto late = MakeJob("late");
  late->MarkQueued(0);
  ASSERT_TRUE(late->Finish(absl::DeadlineExceededError("too slow"), now));
  metrics.WatchJob(late);

  const std::string text = registry.RenderText();
  EXPECT_THAT(text, HasSubstr("dserve_jobs_total{state=\"SUCCEEDED\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dserve_jobs_total{state=\"CANCELLED\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("dserve_jobs_total{state=\"DEADLINE_EXCEEDED\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dserve_jobs_total{state=\"FAILED\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dserve_steps_total{kind=\"computed\"} 12\n"));
  EXPECT_THAT(text, HasSubstr("dserve_steps_total{kind=\"reused\"} 8\n"));
  EXPECT_THAT(text, HasSubstr("dserve_job_queue_wait_seconds_sum 0.02\n"));
  EXPECT_THAT(text, HasSubstr("dserve_job_execution_seconds_sum 1\n"));
  EXPECT_THAT(text, HasSubstr("dserve_job_end_to_end_seconds_sum 1.02\n"));
  EXPECT_THAT(text, HasSubstr("dserve_step_seconds_bucket{le=\"0.05\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dserve_step_seconds_bucket{le=\"0.025\"} 0\n"));
}

TEST(ServingMetricsTest, BatchSizeHistogramHasOneSamplePerStart) {
  MetricsRegistry registry;
  ServingMetrics metrics(&registry);
  const absl::Time now = absl::FromUnixSeconds(100);
  for (const char* id : {"a", "b", "c"}) {
    auto job = MakeJob(id);
    metrics.WatchJob(job);
    job->MarkQueued(0);
    job->MarkStarted(0, dserve::v1::MeshLayout(), 3, now);
  }
  auto alone = MakeJob("alone");
  metrics.WatchJob(alone);
  alone->MarkQueued(0);
  alone->MarkStarted(0, dserve::v1::MeshLayout(), 1, now);

  const std::string text = registry.RenderText();
  EXPECT_THAT(text, HasSubstr("dserve_job_batch_size_bucket{le=\"1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dserve_job_batch_size_bucket{le=\"2\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dserve_job_batch_size_bucket{le=\"4\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("dserve_job_batch_size_sum 10\n"));
  EXPECT_THAT(text, HasSubstr("dserve_job_batch_size_count 4\n"));
}

TEST(MetricsHttpServerTest, ServesMetricsAnd404Elsewhere) {
  MetricsRegistry registry;
  registry.GetCounter("dserve_test_total", "Test.")->Increment(7);
  auto server = MetricsHttpServer::Start("127.0.0.1", 0, &registry);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  auto response = client.Get("/metrics");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_THAT(response->get_header_value("Content-Type"),
              HasSubstr("version=0.0.4"));
  EXPECT_THAT(response->body, HasSubstr("dserve_test_total 7\n"));
  auto missing = client.Get("/other");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST(MetricsHttpServerTest, PortInUseIsUnavailable) {
  MetricsRegistry registry;
  auto first = MetricsHttpServer::Start("127.0.0.1", 0, &registry);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second =
      MetricsHttpServer::Start("127.0.0.1", (*first)->port(), &registry);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("--metrics_port"));
}

}  // namespace
}  // namespace dserve::server

namespace dserve::server {
namespace {

TEST(ServingMetricsTest, RejectedRequestsByCodeAndBuildInfo) {
  MetricsRegistry registry;
  ServingMetrics metrics(&registry);
  // Exported at 0 before anything is refused, so alerts on rate() work.
  std::string text = registry.RenderText();
  EXPECT_THAT(text, HasSubstr("# TYPE dserve_requests_rejected_total counter\n"));
  EXPECT_THAT(text, HasSubstr(
      "dserve_requests_rejected_total{code=\"RESOURCE_EXHAUSTED\"} 0\n"));
  metrics.RecordRejected(absl::ResourceExhaustedError("queue is full"));
  metrics.RecordRejected(absl::ResourceExhaustedError("queue is full"));
  metrics.RecordRejected(absl::UnavailableError("draining"));
  metrics.RecordRejected(absl::DataLossError("odd"));
  metrics.RecordRejected(absl::OkStatus());
  text = registry.RenderText();
  EXPECT_THAT(text, HasSubstr(
      "dserve_requests_rejected_total{code=\"RESOURCE_EXHAUSTED\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(
      "dserve_requests_rejected_total{code=\"UNAVAILABLE\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(
      "dserve_requests_rejected_total{code=\"DATA_LOSS\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE dserve_build_info gauge\n"));
  EXPECT_THAT(text, ::testing::ContainsRegex(
      "dserve_build_info\\{build_date=\"[^\"]+\",compiler=\"[^\"]+\","
      "mode=\"(opt|dbg)\",version=\"0\\.1\\.0\"\\} 1\n"));
}

TEST(LatencySecondsBucketsTest, ReachOneHourForVideo) {
  const std::vector<double> b = LatencySecondsBuckets();
  EXPECT_EQ(b.back(), 3600);
  for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
}

}  // namespace
}  // namespace dserve::server
