// Replica failure through the real server and workers: two replicas of two
// ranks each (--mesh=dp=2,cfg=2). kill -9 of a follower rank, then of a
// leader rank, in the middle of a job:
//  * the job is retried once on the healthy replica and returns exactly the
//    picture an undisturbed run of the same request (same seed) returns;
//  * the dead replica is torn down and restarted (ReplicaInfo.restarts)
//    and is READY again;
//  * no job is lost or duplicated (ListJobs holds exactly the submitted
//    jobs, each SUCCEEDED once).
// Prints the failover time (kill -> the job running again elsewhere) and
// the restart time (kill -> the dead replica READY again).

#include <signal.h>

#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
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

class FailoverE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerProcess::Options options;
    options.replicas = 2;
    // The test kills ranks by the pids GetServerInfo reports.
    options.extra_flags = {"--mesh=dp=2,cfg=2", "--expose_internals"};
    auto server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = dserve::v1::DiffusionService::NewStub(server_->channel());
    auto model = DefaultModel(*stub_);
    ASSERT_TRUE(model.ok()) << model.status();
    request_ = LongRequest(*model, /*steps=*/10, /*size=*/64);
  }

  void TearDown() override {
    if (server_ == nullptr) return;
    absl::StatusOr<int> code = server_->Stop();
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0);
  }

  absl::StatusOr<Job> Submit() {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    dserve::v1::SubmitJobRequest submit;
    *submit.mutable_request() = request_;
    Job job;
    const grpc::Status status = stub_->SubmitJob(&context, submit, &job);
    RETURN_IF_ERROR(common::FromGrpcStatus(status));
    return job;
  }

  absl::StatusOr<dserve::v1::ServerInfo> Info() {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    dserve::v1::ServerInfo info;
    const grpc::Status status = stub_->GetServerInfo(
        &context, dserve::v1::GetServerInfoRequest(), &info);
    RETURN_IF_ERROR(common::FromGrpcStatus(status));
    return info;
  }

  // Runs the request to its end and returns the first media's bytes.
  std::string Reference() {
    absl::StatusOr<Job> job = Submit();
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return "";
    absl::StatusOr<Job> done = WaitForJob(
        *stub_, job->job_id(), [](const Job& j) { return IsTerminal(j.state()); },
        absl::Seconds(40));
    EXPECT_TRUE(done.ok()) << done.status();
    if (!done.ok() || done->result().media_size() == 0) return "";
    EXPECT_EQ(done->state(), dserve::v1::JOB_STATE_SUCCEEDED);
    return done->result().media(0).data();
  }

  // Kills rank `rank` of the replica running a fresh job once it has made
  // progress, and checks the retry and the restart.
  void KillRankMidJob(int rank, const std::string& reference) {
    absl::StatusOr<Job> job = Submit();
    ASSERT_TRUE(job.ok()) << job.status();
    absl::StatusOr<Job> running = WaitForJob(
        *stub_, job->job_id(),
        [](const Job& j) {
          return j.state() == dserve::v1::JOB_STATE_RUNNING && j.step() >= 1;
        },
        absl::Seconds(30));
    ASSERT_TRUE(running.ok()) << running.status();
    const int victim = running->replica();
    absl::StatusOr<dserve::v1::ServerInfo> info = Info();
    ASSERT_TRUE(info.ok()) << info.status();
    ASSERT_EQ(info->replicas(victim).pids_size(), 2);
    const int restarts_before = info->replicas(victim).restarts();
    const int pid = info->replicas(victim).pids(rank);
    const absl::Time killed = absl::Now();
    ASSERT_EQ(kill(pid, SIGKILL), 0);

    // The job runs again, on the other replica.
    absl::StatusOr<Job> retried = WaitForJob(
        *stub_, job->job_id(),
        [victim](const Job& j) {
          return IsTerminal(j.state()) ||
                 (j.state() == dserve::v1::JOB_STATE_RUNNING &&
                  j.replica() != victim);
        },
        absl::Seconds(30));
    ASSERT_TRUE(retried.ok()) << retried.status();
    const absl::Duration failover =
        absl::FromUnixMillis(retried->start_time_ms()) - killed;
    std::cout << "kill -9 of rank " << rank << " (pid " << pid
              << "): job running again on replica " << retried->replica()
              << " after " << absl::FormatDuration(failover) << std::endl;

    absl::StatusOr<Job> done = WaitForJob(
        *stub_, job->job_id(), [](const Job& j) { return IsTerminal(j.state()); },
        absl::Seconds(40));
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_EQ(done->state(), dserve::v1::JOB_STATE_SUCCEEDED)
        << done->status_message();
    EXPECT_NE(done->replica(), victim);
    ASSERT_GT(done->result().media_size(), 0);
    EXPECT_TRUE(done->result().media(0).data() == reference)
        << "the retried job's picture differs from an undisturbed run";

    // The dead replica comes back.
    absl::Time ready_at = absl::InfiniteFuture();
    for (int i = 0; i < 400; ++i) {
      info = Info();
      ASSERT_TRUE(info.ok()) << info.status();
      const auto& r = info->replicas(victim);
      if (r.restarts() == restarts_before + 1 &&
          r.state() == dserve::v1::REPLICA_STATE_READY) {
        ready_at = absl::Now();
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    ASSERT_NE(ready_at, absl::InfiniteFuture())
        << "replica " << victim << " did not restart; last state "
        << dserve::v1::ReplicaState_Name(info->replicas(victim).state());
    std::cout << "replica " << victim << " READY again "
              << absl::FormatDuration(ready_at - killed) << " after the kill"
              << std::endl;
    EXPECT_NE(info->replicas(victim).pids(rank), pid);
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<dserve::v1::DiffusionService::Stub> stub_;
  dserve::v1::GenerateRequest request_;
};

TEST_F(FailoverE2eTest, KillFollowerThenLeaderMidJob) {
  const std::string reference = Reference();
  ASSERT_FALSE(reference.empty());
  KillRankMidJob(/*rank=*/1, reference);
  KillRankMidJob(/*rank=*/0, reference);

  // Exactly the three submitted jobs, each SUCCEEDED.
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  dserve::v1::ListJobsResponse list;
  ASSERT_TRUE(
      stub_->ListJobs(&context, dserve::v1::ListJobsRequest(), &list).ok());
  ASSERT_EQ(list.jobs_size(), 3);
  for (const Job& job : list.jobs()) {
    EXPECT_EQ(job.state(), dserve::v1::JOB_STATE_SUCCEEDED) << job.job_id();
  }
}

}  // namespace
}  // namespace dserve::tests
