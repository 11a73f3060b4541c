// Cancel latency through the real server and worker: the time from
// CancelJob to the job's terminal state, which the server now reports only
// once the worker has left the cancelled plan (it stops at the next step
// boundary), compared with the job's mean step time. Three cancels; prints
// each figure and the worst latency / mean step ratio.

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {
namespace {

using dserve::v1::Job;

// Request -> server -> leader, and the terminal state back to the poller
// (10 ms polls), on 2 shared cores.
constexpr double kSlackMs = 200;
// The step running when the cancel arrives finishes; on 2 cores shared with
// other builds one step was seen to take 1.7x the job's mean, so the bound is
// two mean steps. That still separates "stops at the next step boundary"
// from "runs on" (the job has ~200 steps); the printed ratio is the figure.
constexpr double kMeanSteps = 2;

TEST(CancelLatencyE2eTest, RunningJobEndsAtTheNextStepBoundary) {
  ServerProcess::Options options;
  options.replicas = 1;
  auto server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = dserve::v1::DiffusionService::NewStub((*server)->channel());
  absl::StatusOr<dserve::v1::ModelInfo> model = DefaultModel(*stub);
  ASSERT_TRUE(model.ok()) << model.status();

  double worst_ratio = 0;
  for (int round = 0; round < 3; ++round) {
    grpc::ClientContext submit_context;
    dserve::v1::SubmitJobRequest submit;
    *submit.mutable_request() = LongRequest(*model);
    Job job;
    ASSERT_TRUE(stub->SubmitJob(&submit_context, submit, &job).ok());
    absl::StatusOr<Job> running = WaitForJob(
        *stub, job.job_id(),
        [](const Job& j) {
          return j.state() == dserve::v1::JOB_STATE_RUNNING && j.step() >= 3;
        },
        absl::Seconds(30));
    ASSERT_TRUE(running.ok()) << running.status();

    const absl::Time cancel_at = absl::Now();
    const double step_ms =
        absl::ToDoubleMilliseconds(
            cancel_at - absl::FromUnixMillis(running->start_time_ms())) /
        running->step();
    grpc::ClientContext cancel_context;
    dserve::v1::CancelJobRequest cancel;
    cancel.set_job_id(job.job_id());
    Job at_cancel;
    ASSERT_TRUE(stub->CancelJob(&cancel_context, cancel, &at_cancel).ok());
    absl::StatusOr<Job> ended = WaitForJob(
        *stub, job.job_id(), [](const Job& j) { return IsTerminal(j.state()); },
        absl::Seconds(30));
    ASSERT_TRUE(ended.ok()) << ended.status();
    EXPECT_EQ(ended->state(), dserve::v1::JOB_STATE_CANCELLED);
    const double latency_ms = absl::ToDoubleMilliseconds(
        absl::FromUnixMillis(ended->end_time_ms()) - cancel_at);
    std::cout << "cancel latency " << latency_ms << " ms; mean step "
              << step_ms << " ms" << std::endl;
    worst_ratio = std::max(worst_ratio, latency_ms / step_ms);
    EXPECT_LE(latency_ms, kMeanSteps * step_ms + kSlackMs)
        << "the cancelled job ran on past the next step boundary";
  }
  std::cout << "worst cancel latency / mean step = " << worst_ratio
            << std::endl;

  absl::StatusOr<int> code = (*server)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace dserve::tests
