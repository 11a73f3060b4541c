// Issue 16, finding 1 (one request holding a replica long after its client
// gave up), through the real server and worker:
//  * Generate with a short client deadline on a job that would run ~50 s:
//    the job ends DEADLINE_EXCEEDED, stopped at the next denoising step,
//    and the replica runs the next job at once. Prints the replica's busy
//    time after the deadline next to the job's mean step.
//  * SubmitJob gets --default_job_deadline_s: a long job ends
//    DEADLINE_EXCEEDED once, and a job queued behind it ends
//    DEADLINE_EXCEEDED without ever running.
//  * The replica reports the model's measured cost (ListModels cost) and
//    a job over --max_job_seconds is refused at admission with a message
//    naming the estimate and the budget.

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
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

// Scheduler poll (100 ms), GetJob polls (10 ms) and process hops on 2
// shared cores.
constexpr double kSlackMs = 1500;
constexpr int kDefaultDeadlineS = 4;

double MeanStepMs(const GenerateOutcome& outcome) {
  double elapsed = 0;
  int step = 0;
  for (const auto& e : outcome.events) {
    if (e.has_progress() && e.progress().step() > 0 &&
        e.progress().stage() == dserve::v1::PROGRESS_STAGE_DENOISE) {
      elapsed = e.progress().elapsed_ms();
      step = e.progress().step();
    }
  }
  return step > 0 ? elapsed / step : 0;
}

absl::StatusOr<Job> SubmitAndWait(Stub& stub,
                                  const dserve::v1::GenerateRequest& request) {
  grpc::ClientContext context;
  dserve::v1::SubmitJobRequest submit;
  *submit.mutable_request() = request;
  Job job;
  grpc::Status s = stub.SubmitJob(&context, submit, &job);
  if (!s.ok()) return absl::InternalError(s.error_message());
  return WaitForJob(
      stub, job.job_id(), [](const Job& j) { return IsTerminal(j.state()); },
      absl::Seconds(60));
}

TEST(DeadlineE2eTest, JobsStopAtTheirDeadlineAndCostIsBounded) {
  ServerProcess::Options options;
  options.replicas = 1;
  options.extra_flags = {
      absl::StrCat("--default_job_deadline_s=", kDefaultDeadlineS),
      // The model's default budget (the harness turns it off).
      "--max_job_seconds=-1"};
  auto server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = dserve::v1::DiffusionService::NewStub((*server)->channel());
  absl::StatusOr<dserve::v1::ModelInfo> model = DefaultModel(*stub);
  ASSERT_TRUE(model.ok()) << model.status();

  // The replica measured the model's cost at start.
  ASSERT_TRUE(model->has_cost()) << model->ShortDebugString();
  std::cout << "cost model: " << model->cost().ShortDebugString()
            << std::endl;
  EXPECT_GT(model->cost().seconds_per_token() +
                model->cost().seconds_per_token_squared(),
            0);
  EXPECT_EQ(model->cost().default_max_job_seconds(), 600);

  // 1. Generate, 2 s client deadline, ~50 s of work.
  const dserve::v1::GenerateRequest long_request = LongRequest(*model);
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  GenerateOutcome outcome =
      GenerateToEnd(*stub, long_request, deadline - absl::Now());
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << outcome.status.error_message();
  ASSERT_FALSE(outcome.job_id().empty());
  absl::StatusOr<Job> ended = WaitForJob(
      *stub, outcome.job_id(), [](const Job& j) { return IsTerminal(j.state()); },
      absl::Seconds(30));
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->state(), dserve::v1::JOB_STATE_DEADLINE_EXCEEDED)
      << ended->status_message();
  EXPECT_LT(ended->step(), 100) << "the job ran on past its deadline";
  const double step_ms = MeanStepMs(outcome);
  ASSERT_GT(step_ms, 0) << "no denoising step before the deadline";

  // The next job starts as soon as the replica left the stopped plan.
  absl::StatusOr<Job> next = SubmitAndWait(*stub, SmallRequest(*model));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->state(), dserve::v1::JOB_STATE_SUCCEEDED)
      << next->status_message();
  const double busy_after_deadline_ms = absl::ToDoubleMilliseconds(
      absl::FromUnixMillis(next->start_time_ms()) - deadline);
  std::cout << "replica busy " << busy_after_deadline_ms
            << " ms after the 2 s deadline; mean step " << step_ms
            << " ms; job stopped after " << ended->step() << " of "
            << ended->total_steps() << " steps: " << ended->status_message()
            << std::endl;
  EXPECT_LE(busy_after_deadline_ms, 2 * step_ms + kSlackMs);

  // 2. SubmitJob: the default deadline. The first runs and is stopped; the
  // second waits behind it and expires in the queue without running.
  grpc::ClientContext c1, c2;
  dserve::v1::SubmitJobRequest submit;
  *submit.mutable_request() = long_request;
  Job running, queued;
  const absl::Time submitted = absl::Now();
  ASSERT_TRUE(stub->SubmitJob(&c1, submit, &running).ok());
  ASSERT_TRUE(stub->SubmitJob(&c2, submit, &queued).ok());
  for (const Job* j : {&running, &queued}) {
    absl::StatusOr<Job> end = WaitForJob(
        *stub, j->job_id(), [](const Job& x) { return IsTerminal(x.state()); },
        absl::Seconds(kDefaultDeadlineS + 30));
    ASSERT_TRUE(end.ok()) << end.status();
    EXPECT_EQ(end->state(), dserve::v1::JOB_STATE_DEADLINE_EXCEEDED)
        << end->status_message();
    EXPECT_EQ(end->status_code(), static_cast<int>(grpc::DEADLINE_EXCEEDED));
    const double ended_after_ms = absl::ToDoubleMilliseconds(
        absl::FromUnixMillis(end->end_time_ms()) - submitted);
    EXPECT_LE(ended_after_ms, kDefaultDeadlineS * 1000 + 2 * step_ms + kSlackMs)
        << end->ShortDebugString();
    if (j == &queued) {
      EXPECT_EQ(end->start_time_ms(), 0) << "the queued job ran";
    }
  }
  // Ended exactly once: still DEADLINE_EXCEEDED a moment later.
  absl::SleepFor(absl::Milliseconds(300));
  absl::StatusOr<Job> again = GetJob(*stub, running.job_id());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->state(), dserve::v1::JOB_STATE_DEADLINE_EXCEEDED);

  // 3. Over the cost budget: refused at admission, naming both numbers.
  dserve::v1::GenerateRequest huge;
  huge.set_prompt("a red circle");
  huge.set_width(model->max_width());
  huge.set_height(model->max_height());
  huge.set_num_frames(model->max_frames());
  huge.set_num_inference_steps(model->max_steps());
  GenerateOutcome refused = GenerateToEnd(*stub, huge, absl::Seconds(10));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.status.error_message().find("estimated cost"),
            std::string::npos)
      << refused.status.error_message();
  EXPECT_NE(refused.status.error_message().find("--max_job_seconds=600 s"),
            std::string::npos)
      << refused.status.error_message();
  std::cout << "refused: " << refused.status.error_message() << std::endl;

  absl::StatusOr<int> code = (*server)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace dserve::tests
