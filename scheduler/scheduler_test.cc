#include "scheduler/scheduler.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/testing/fake_clock.h"
#include "scheduler/testing/fake_replica.h"

namespace dserve::scheduler {
namespace {

using ::testing::HasSubstr;
using testing::FakeClock;
using testing::FakeReplica;

// Collects a job's events, as a Generate stream would.
struct Stream {
  std::vector<JobEvent> events;
  bool ended() const { return !events.empty() && events.back().terminal; }
  const JobEvent& last() const { return events.back(); }
};

class SchedulerTest : public ::testing::Test {
 protected:
  void MakeScheduler(int replicas, int capacity = 8) {
    for (int i = 0; i < replicas; ++i) {
      replicas_.push_back(std::make_unique<FakeReplica>(i));
    }
    std::vector<ReplicaHandle*> handles;
    for (auto& r : replicas_) handles.push_back(r.get());
    SchedulerOptions options;
    options.queue_capacity = capacity;
    scheduler_ = std::make_unique<Scheduler>(options, handles, &clock_);
  }

  std::shared_ptr<Job> Submit(int priority = 0,
                              std::optional<absl::Duration> deadline = {},
                              Stream* stream = nullptr) {
    JobSpec spec;
    spec.id = "j-" + std::to_string(next_);
    spec.sequence = next_++;
    spec.effective_request.set_prompt("a red square");
    spec.effective_request.set_num_inference_steps(3);
    spec.effective_request.set_width(64);
    spec.effective_request.set_height(32);
    spec.effective_request.set_seed(40 + next_);
    spec.effective_request.set_priority(priority);
    spec.create_time = clock_.Now();
    if (deadline.has_value()) spec.deadline = clock_.Now() + *deadline;
    auto job = std::make_shared<Job>(spec);
    if (stream != nullptr) {
      job->AddListener([stream](const JobEvent& e) { stream->events.push_back(e); });
    }
    EXPECT_TRUE(scheduler_->Submit(job).ok());
    return job;
  }

  FakeClock clock_;
  std::vector<std::unique_ptr<FakeReplica>> replicas_;
  std::unique_ptr<Scheduler> scheduler_;
  int next_ = 1;
};

TEST_F(SchedulerTest, JobRunsToCompletion) {
  MakeScheduler(1);
  Stream stream;
  auto job = Submit(0, {}, &stream);
  clock_.Advance(absl::Milliseconds(5));
  scheduler_->RunOnce();
  ASSERT_TRUE(replicas_[0]->running());
  const auto plan = *replicas_[0]->last_plan();
  EXPECT_EQ(plan.width(), 64);
  EXPECT_EQ(plan.num_inference_steps(), 3);
  ASSERT_EQ(plan.items_size(), 1);
  EXPECT_EQ(plan.items(0).job_id(), job->id());
  EXPECT_EQ(plan.items(0).seed(), job->effective_request().seed());
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_RUNNING);

  for (int step = 1; step <= 3; ++step) {
    replicas_[0]->EmitStep(step, step == 2 ? job->id() : "");
  }
  clock_.Advance(absl::Milliseconds(10));
  replicas_[0]->Complete();
  scheduler_->RunOnce();

  ASSERT_TRUE(stream.ended());
  // Queued, Started, 3 x Progress, Result.
  ASSERT_EQ(stream.events.size(), 6u);
  EXPECT_TRUE(stream.events[0].event.has_queued());
  EXPECT_EQ(stream.events[1].event.started().replica(), 0);
  EXPECT_EQ(stream.events[3].event.progress().step(), 2);
  EXPECT_TRUE(stream.events[3].event.progress().has_preview());
  EXPECT_FALSE(stream.events[2].event.progress().has_preview());
  const dserve::v1::Result& result = stream.last().event.result();
  EXPECT_EQ(result.seed(), job->effective_request().seed());
  EXPECT_EQ(result.media_size(), 1);
  EXPECT_DOUBLE_EQ(result.timings().queue_ms(), 5.0);
  EXPECT_DOUBLE_EQ(result.timings().total_ms(), 15.0);
  EXPECT_DOUBLE_EQ(result.timings().step_ms_mean(), 2.0);
  EXPECT_EQ(result.effective_request().prompt(), "a red square");
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(scheduler_->WaitUntilIdle(absl::ZeroDuration()));
}

TEST_F(SchedulerTest, HigherPriorityRunsFirst) {
  MakeScheduler(1);
  replicas_[0]->SetState(dserve::v1::REPLICA_STATE_STARTING);
  auto low = Submit(0);
  auto high = Submit(10);
  replicas_[0]->SetState(dserve::v1::REPLICA_STATE_READY);
  scheduler_->RunOnce();
  EXPECT_EQ(replicas_[0]->last_plan()->items(0).job_id(), high->id());
  EXPECT_EQ(low->state(), dserve::v1::JOB_STATE_QUEUED);
  replicas_[0]->Complete();
  scheduler_->RunOnce();  // Routes the end; frees the replica.
  scheduler_->RunOnce();  // Dispatches the next job.
  EXPECT_EQ(replicas_[0]->last_plan()->items(0).job_id(), low->id());
}

TEST_F(SchedulerTest, CancelQueuedJobEndsAtOnce) {
  MakeScheduler(1);
  replicas_[0]->SetState(dserve::v1::REPLICA_STATE_STARTING);
  Stream stream;
  auto job = Submit(0, {}, &stream);
  scheduler_->Cancel(job, absl::CancelledError("job j-1 cancelled by CancelJob"));
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_CANCELLED);
  ASSERT_TRUE(stream.ended());
  EXPECT_EQ(stream.last().status.code(), absl::StatusCode::kCancelled);
  replicas_[0]->SetState(dserve::v1::REPLICA_STATE_READY);
  scheduler_->RunOnce();
  EXPECT_EQ(replicas_[0]->runs(), 0);
  EXPECT_EQ(scheduler_->queue_depth(), 0);
}

TEST_F(SchedulerTest, CancelRunningJobReachesTheReplica) {
  MakeScheduler(1);
  Stream stream;
  auto job = Submit(0, {}, &stream);
  scheduler_->RunOnce();
  replicas_[0]->EmitStep(1);
  scheduler_->Cancel(job, absl::CancelledError("client disconnected"));
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_RUNNING);
  scheduler_->RunOnce();
  EXPECT_TRUE(replicas_[0]->cancel_requested());
  // The replica stops at the next step boundary and reports CANCELLED.
  replicas_[0]->EndWith(absl::CancelledError("Execute cancelled"));
  scheduler_->RunOnce();
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_CANCELLED);
  ASSERT_TRUE(stream.ended());
  EXPECT_EQ(stream.last().status.message(), "client disconnected");
}

TEST_F(SchedulerTest, QueuedDeadlineExpires) {
  MakeScheduler(1);
  replicas_[0]->SetState(dserve::v1::REPLICA_STATE_STARTING);
  auto job = Submit(0, absl::Seconds(2));
  auto patient = Submit(0);
  clock_.Advance(absl::Seconds(1));
  scheduler_->RunOnce();
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_QUEUED);
  clock_.Advance(absl::Seconds(1));
  scheduler_->RunOnce();
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_DEADLINE_EXCEEDED);
  EXPECT_THAT(job->ToProto(false).status_message(),
              HasSubstr("while still queued"));
  EXPECT_EQ(patient->state(), dserve::v1::JOB_STATE_QUEUED);
}

TEST_F(SchedulerTest, RunningDeadlineCancelsOnReplica) {
  MakeScheduler(1);
  auto job = Submit(0, absl::Seconds(2));
  scheduler_->RunOnce();
  clock_.Advance(absl::Seconds(3));
  scheduler_->RunOnce();
  EXPECT_TRUE(replicas_[0]->cancel_requested());
  replicas_[0]->EndWith(absl::CancelledError("Execute cancelled"));
  scheduler_->RunOnce();
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_DEADLINE_EXCEEDED);
}

TEST_F(SchedulerTest, TwoJobsUseBothReplicas) {
  MakeScheduler(2);
  auto a = Submit();
  auto b = Submit();
  scheduler_->RunOnce();
  EXPECT_EQ(replicas_[0]->runs(), 1);
  EXPECT_EQ(replicas_[1]->runs(), 1);
  EXPECT_NE(a->replica(), b->replica());
}

TEST_F(SchedulerTest, SequentialJobsAlternateReplicas) {
  MakeScheduler(2);
  std::vector<int> used;
  for (int i = 0; i < 4; ++i) {
    auto job = Submit();
    clock_.Advance(absl::Milliseconds(1));
    scheduler_->RunOnce();
    used.push_back(job->replica());
    replicas_[job->replica()]->Complete();
    scheduler_->RunOnce();
    EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_SUCCEEDED);
  }
  EXPECT_EQ(used, (std::vector<int>{0, 1, 0, 1}));
}

TEST_F(SchedulerTest, ReplicaFailureRetriesRunningJobOnceElsewhere) {
  MakeScheduler(2);
  Stream stream;
  auto job = Submit(0, {}, &stream);
  scheduler_->RunOnce();
  const int replica = job->replica();
  const auto first_plan = *replicas_[replica]->last_plan();
  replicas_[replica]->EndWith(
      absl::UnavailableError("replica 0: rank 1 (pid 42) was killed by signal 9"),
      dserve::v1::REPLICA_STATE_FAILED);
  scheduler_->RunOnce();  // Routes the failure: the job is queued again.
  scheduler_->RunOnce();  // Dispatches it.
  // Retried on the healthy replica with the same seed.
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job->retries(), 1);
  EXPECT_EQ(job->replica(), 1 - replica);
  ASSERT_TRUE(replicas_[1 - replica]->running());
  const auto retry_plan = *replicas_[1 - replica]->last_plan();
  EXPECT_EQ(retry_plan.items(0).seed(), first_plan.items(0).seed());
  replicas_[1 - replica]->Complete();
  scheduler_->RunOnce();
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_SUCCEEDED);
  int started = 0;
  int terminal = 0;
  for (const JobEvent& e : stream.events) {
    if (e.event.has_started()) ++started;
    if (e.terminal) ++terminal;
  }
  EXPECT_EQ(started, 2);
  EXPECT_EQ(terminal, 1);
}

TEST_F(SchedulerTest, SecondReplicaFailureEndsJobWithUnavailable) {
  MakeScheduler(2);
  Stream stream;
  auto job = Submit(0, {}, &stream);
  scheduler_->RunOnce();
  const int first = job->replica();
  replicas_[first]->EndWith(absl::UnavailableError("replica: rank 1 died"),
                            dserve::v1::REPLICA_STATE_FAILED);
  scheduler_->RunOnce();
  scheduler_->RunOnce();
  ASSERT_EQ(job->replica(), 1 - first);
  // The first replica came back; the retry dies too: no second retry.
  replicas_[first]->SetState(dserve::v1::REPLICA_STATE_READY);
  replicas_[1 - first]->EndWith(
      absl::UnavailableError("replica: rank 0 (pid 43) was killed by signal 9"),
      dserve::v1::REPLICA_STATE_FAILED);
  scheduler_->RunOnce();
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_FAILED);
  ASSERT_TRUE(stream.ended());
  EXPECT_EQ(stream.last().status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(stream.last().status.message(), HasSubstr("rank 0"));
  EXPECT_FALSE(replicas_[first]->running());
  // The healthy replica still takes work.
  auto next = Submit();
  scheduler_->RunOnce();
  EXPECT_EQ(next->replica(), first);
}

TEST_F(SchedulerTest, FailureOfTheOnlyReplicaEndsJobWithUnavailable) {
  MakeScheduler(1);
  Stream stream;
  auto job = Submit(0, {}, &stream);
  scheduler_->RunOnce();
  replicas_[0]->EndWith(
      absl::UnavailableError("replica 0: rank 1 (pid 42) was killed by signal 9"),
      dserve::v1::REPLICA_STATE_FAILED);
  scheduler_->RunOnce();
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_FAILED);
  ASSERT_TRUE(stream.ended());
  EXPECT_EQ(stream.last().status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(stream.last().status.message(), HasSubstr("rank 1"));
}

// A single replica (dp=1) whose rank died restarts after its back-off:
// meanwhile the scheduler keeps the running job for one retry, keeps the
// queued ones and admits new ones, and runs them all once it is READY.
TEST_F(SchedulerTest, OnlyReplicaThatWillRestartKeepsAndRetriesItsJobs) {
  MakeScheduler(1);
  Stream stream;
  auto job = Submit(0, {}, &stream);
  scheduler_->RunOnce();
  ASSERT_TRUE(replicas_[0]->running());
  const auto first_plan = *replicas_[0]->last_plan();
  auto queued = Submit();
  replicas_[0]->SetRestartPending(true);
  replicas_[0]->EndWith(
      absl::UnavailableError("replica 0: rank 1 (pid 42) was killed by signal 9"),
      dserve::v1::REPLICA_STATE_FAILED);
  scheduler_->RunOnce();
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(job->retries(), 1);
  EXPECT_EQ(queued->state(), dserve::v1::JOB_STATE_QUEUED);
  auto late = Submit();  // admitted while the replica restarts
  EXPECT_EQ(late->state(), dserve::v1::JOB_STATE_QUEUED);
  EXPECT_FALSE(scheduler_->AnyReplicaServing());
  EXPECT_FALSE(scheduler_->NoReplicaLeft());

  // Restarted: the retry runs first (it keeps its place), same seed.
  replicas_[0]->SetState(dserve::v1::REPLICA_STATE_STARTING);
  replicas_[0]->SetState(dserve::v1::REPLICA_STATE_READY);
  scheduler_->RunOnce();
  ASSERT_TRUE(replicas_[0]->running());
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(replicas_[0]->last_plan()->items(0).seed(),
            first_plan.items(0).seed());
  replicas_[0]->Complete();
  scheduler_->RunOnce();
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_SUCCEEDED);
  int terminal = 0;
  for (const JobEvent& e : stream.events) terminal += e.terminal ? 1 : 0;
  EXPECT_EQ(terminal, 1);

  // The jobs that waited through the restart run next.
  scheduler_->RunOnce();
  ASSERT_TRUE(replicas_[0]->running());
  EXPECT_EQ(queued->state(), dserve::v1::JOB_STATE_RUNNING);
}

// A replica that stays FAILED (it never started, or its restarts gave up)
// leaves nothing to run jobs: as before, queued jobs fail and new ones are
// refused.
TEST_F(SchedulerTest, AllReplicasFailedRejectsAndFailsQueued) {
  MakeScheduler(1);
  replicas_[0]->SetState(dserve::v1::REPLICA_STATE_STARTING);
  auto queued = Submit();
  replicas_[0]->SetState(dserve::v1::REPLICA_STATE_FAILED);
  scheduler_->RunOnce();
  EXPECT_EQ(queued->state(), dserve::v1::JOB_STATE_FAILED);
  EXPECT_EQ(queued->ToProto(false).status_code(),
            static_cast<int>(absl::StatusCode::kUnavailable));
  JobSpec spec;
  spec.id = "late";
  absl::Status status = scheduler_->Submit(std::make_shared<Job>(spec));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("no healthy replica"));
}

TEST_F(SchedulerTest, FullQueueIsResourceExhausted) {
  MakeScheduler(1, /*capacity=*/1);
  replicas_[0]->SetState(dserve::v1::REPLICA_STATE_STARTING);
  Submit();
  JobSpec spec;
  spec.id = "overflow";
  absl::Status status = scheduler_->Submit(std::make_shared<Job>(spec));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("1 of 1"));
}

TEST_F(SchedulerTest, StopAdmittingAndStopEndEveryJob) {
  MakeScheduler(1);
  auto running = Submit();
  auto queued = Submit();
  scheduler_->RunOnce();
  scheduler_->StopAdmitting(absl::UnavailableError("server is draining"));
  JobSpec spec;
  spec.id = "late";
  EXPECT_EQ(scheduler_->Submit(std::make_shared<Job>(spec)).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE(scheduler_->WaitUntilIdle(absl::Milliseconds(30)));
  scheduler_->Stop(absl::UnavailableError("server shut down"));
  EXPECT_EQ(running->state(), dserve::v1::JOB_STATE_FAILED);
  EXPECT_EQ(queued->state(), dserve::v1::JOB_STATE_FAILED);
  EXPECT_TRUE(replicas_[0]->cancel_requested());
}

TEST_F(SchedulerTest, LoopThreadRunsJobsWhenWoken) {
  MakeScheduler(1);
  scheduler_->Start();
  auto job = Submit();
  for (int i = 0; i < 200 && !replicas_[0]->running(); ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(replicas_[0]->running());
  replicas_[0]->Complete();
  EXPECT_TRUE(scheduler_->WaitUntilIdle(absl::Seconds(5)));
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_SUCCEEDED);
  scheduler_->Stop(absl::UnavailableError("test over"));
}

}  // namespace
}  // namespace dserve::scheduler
