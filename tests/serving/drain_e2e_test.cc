// Serving-layer behaviour through the real server and workers:
//  * SIGTERM with nothing in flight exits promptly even while a client
//    holds a connection (an idle channel must not hold the drain up);
//  * --max_queue_age_s: a low-priority job that has waited that long runs
//    before a younger high-priority job.

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/rpc_status.h"
#include "common/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {
namespace {

using dserve::v1::Job;

absl::StatusOr<Job> Submit(dserve::v1::DiffusionService::Stub& stub,
                           const dserve::v1::GenerateRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  dserve::v1::SubmitJobRequest submit;
  *submit.mutable_request() = request;
  Job job;
  const grpc::Status status = stub.SubmitJob(&context, submit, &job);
  RETURN_IF_ERROR(common::FromGrpcStatus(status));
  return job;
}

absl::Status CancelJob(dserve::v1::DiffusionService::Stub& stub,
                       const std::string& job_id) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  dserve::v1::CancelJobRequest cancel;
  cancel.set_job_id(job_id);
  Job job;
  return common::FromGrpcStatus(stub.CancelJob(&context, cancel, &job));
}

TEST(DrainE2eTest, IdleServerExitsPromptlyWhileAClientHoldsAConnection) {
  ServerProcess::Options options;
  options.replicas = 1;
  auto server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = dserve::v1::DiffusionService::NewStub((*server)->channel());
  {
    // A finished call leaves the channel connected, as a real client's is.
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    dserve::v1::ServerInfo info;
    ASSERT_TRUE(
        stub->GetServerInfo(&context, dserve::v1::GetServerInfoRequest(), &info)
            .ok());
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<int> code = (*server)->Stop(absl::Seconds(30));
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  std::cout << "SIGTERM to exit with an idle client connected: "
            << absl::FormatDuration(took) << std::endl;
  // Stopping one replica's worker takes a few hundred ms; the old drain
  // waited out a 5 s shutdown deadline for the idle connection.
  EXPECT_LT(took, absl::Seconds(3));
}

TEST(DrainE2eTest, AgedLowPriorityJobRunsBeforeYoungerHighPriorityJob) {
  ServerProcess::Options options;
  options.replicas = 1;
  options.extra_flags = {"--max_queue_age_s=1"};
  auto server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = dserve::v1::DiffusionService::NewStub((*server)->channel());
  absl::StatusOr<dserve::v1::ModelInfo> model = DefaultModel(*stub);
  ASSERT_TRUE(model.ok()) << model.status();

  // Occupy the only replica.
  absl::StatusOr<Job> blocker = Submit(*stub, LongRequest(*model));
  ASSERT_TRUE(blocker.ok()) << blocker.status();
  ASSERT_TRUE(WaitForJob(
                  *stub, blocker->job_id(),
                  [](const Job& j) {
                    return j.state() == dserve::v1::JOB_STATE_RUNNING;
                  },
                  absl::Seconds(30))
                  .ok());

  dserve::v1::GenerateRequest low_request = SmallRequest(*model);
  low_request.set_priority(0);
  absl::StatusOr<Job> low = Submit(*stub, low_request);
  ASSERT_TRUE(low.ok()) << low.status();
  // Let the low-priority job pass --max_queue_age_s=1.
  absl::SleepFor(absl::Milliseconds(1300));
  dserve::v1::GenerateRequest high_request = SmallRequest(*model);
  high_request.set_priority(10);
  absl::StatusOr<Job> high = Submit(*stub, high_request);
  ASSERT_TRUE(high.ok()) << high.status();

  ASSERT_TRUE(CancelJob(*stub, blocker->job_id()).ok());
  auto terminal = [](const Job& j) { return IsTerminal(j.state()); };
  absl::StatusOr<Job> low_done =
      WaitForJob(*stub, low->job_id(), terminal, absl::Seconds(30));
  absl::StatusOr<Job> high_done =
      WaitForJob(*stub, high->job_id(), terminal, absl::Seconds(30));
  ASSERT_TRUE(low_done.ok()) << low_done.status();
  ASSERT_TRUE(high_done.ok()) << high_done.status();
  EXPECT_EQ(low_done->state(), dserve::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(high_done->state(), dserve::v1::JOB_STATE_SUCCEEDED);
  EXPECT_LT(low_done->start_time_ms(), high_done->start_time_ms())
      << "the aged priority-0 job should have started before the younger "
         "priority-10 job";

  absl::StatusOr<int> code = (*server)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace dserve::tests
