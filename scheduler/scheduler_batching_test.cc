// Scheduler with max_batch > 1: compatible queued jobs share one plan, each
// keeping its own seed, events and result.

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/scheduler.h"
#include "scheduler/testing/fake_clock.h"
#include "scheduler/testing/fake_replica.h"

namespace dserve::scheduler {
namespace {

using testing::FakeClock;
using testing::FakeReplica;

struct Stream {
  std::vector<JobEvent> events;
  bool ended() const { return !events.empty() && events.back().terminal; }
  const JobEvent& last() const { return events.back(); }
  int started_batch_size() const {
    for (const auto& e : events) {
      if (e.event.has_started()) return e.event.started().batch_size();
    }
    return 0;
  }
};

class SchedulerBatchingTest : public ::testing::Test {
 protected:
  void MakeScheduler(int replicas, int max_batch, absl::Duration batch_wait) {
    for (int i = 0; i < replicas; ++i) {
      replicas_.push_back(std::make_unique<FakeReplica>(i));
    }
    std::vector<ReplicaHandle*> handles;
    for (auto& r : replicas_) handles.push_back(r.get());
    SchedulerOptions options;
    options.queue_capacity = 16;
    options.max_batch = max_batch;
    options.batch_wait = batch_wait;
    scheduler_ = std::make_unique<Scheduler>(options, handles, &clock_);
  }

  std::shared_ptr<Job> Submit(Stream* stream, int width = 64) {
    JobSpec spec;
    spec.id = "j-" + std::to_string(next_);
    spec.sequence = next_++;
    spec.effective_request.set_prompt("a red square");
    spec.effective_request.set_num_inference_steps(3);
    spec.effective_request.set_width(width);
    spec.effective_request.set_height(32);
    spec.effective_request.set_seed(100 + next_);
    spec.create_time = clock_.Now();
    auto job = std::make_shared<Job>(spec);
    job->AddListener(
        [stream](const JobEvent& e) { stream->events.push_back(e); });
    EXPECT_TRUE(scheduler_->Submit(job).ok());
    return job;
  }

  // Streams outlive the scheduler: its destructor ends still-running jobs,
  // which notifies their listeners.
  Stream& NewStream() { return streams_.emplace_back(); }

  FakeClock clock_;
  std::deque<Stream> streams_;
  std::vector<std::unique_ptr<FakeReplica>> replicas_;
  std::unique_ptr<Scheduler> scheduler_;
  int next_ = 1;
};

TEST_F(SchedulerBatchingTest, FourCompatibleJobsRunAsOnePlan) {
  MakeScheduler(1, 4, absl::Milliseconds(20));
  std::vector<Stream*> streams;
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 4; ++i) {
    streams.push_back(&NewStream());
    jobs.push_back(Submit(streams.back()));
  }
  scheduler_->RunOnce();
  ASSERT_EQ(replicas_[0]->runs(), 1);
  const auto plan = *replicas_[0]->last_plan();
  ASSERT_EQ(plan.items_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(plan.items(i).job_id(), jobs[i]->id());
    EXPECT_EQ(plan.items(i).seed(), jobs[i]->effective_request().seed());
    EXPECT_EQ(streams[i]->started_batch_size(), 4);
  }
  replicas_[0]->Complete();
  scheduler_->RunOnce();
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(jobs[i]->id());
    EXPECT_EQ(jobs[i]->state(), dserve::v1::JOB_STATE_SUCCEEDED);
    ASSERT_TRUE(streams[i]->ended());
    ASSERT_TRUE(streams[i]->last().event.has_result());
    // The event carries the summary; the bytes are in the shared result.
    ASSERT_NE(streams[i]->last().result, nullptr);
    const auto& result = *streams[i]->last().result;
    EXPECT_EQ(result.seed(), jobs[i]->effective_request().seed());
    // FakeReplica's media byte is the item's seed: each job got its own.
    ASSERT_EQ(result.media_size(), 1);
    EXPECT_EQ(result.media(0).data(),
              std::string(1, static_cast<char>(
                                 jobs[i]->effective_request().seed() % 256)));
  }
}

TEST_F(SchedulerBatchingTest, IncompatibleSizesRunAsSeparatePlans) {
  MakeScheduler(1, 4, absl::ZeroDuration());
  Stream& a = NewStream();
  Stream& b = NewStream();
  Stream& c = NewStream();
  auto wide = Submit(&a, 64);
  auto narrow = Submit(&b, 32);
  auto wide2 = Submit(&c, 64);
  scheduler_->RunOnce();
  auto plan = *replicas_[0]->last_plan();
  ASSERT_EQ(plan.items_size(), 2);
  EXPECT_EQ(plan.items(0).job_id(), wide->id());
  EXPECT_EQ(plan.items(1).job_id(), wide2->id());
  EXPECT_EQ(narrow->state(), dserve::v1::JOB_STATE_QUEUED);
  replicas_[0]->Complete();
  scheduler_->RunOnce();
  scheduler_->RunOnce();
  ASSERT_EQ(replicas_[0]->runs(), 2);
  plan = *replicas_[0]->last_plan();
  ASSERT_EQ(plan.items_size(), 1);
  EXPECT_EQ(plan.items(0).job_id(), narrow->id());
  EXPECT_EQ(plan.width(), 32);
  EXPECT_EQ(b.started_batch_size(), 1);
}

TEST_F(SchedulerBatchingTest, PartialBatchWaitsForBatchWait) {
  MakeScheduler(1, 4, absl::Milliseconds(20));
  Stream& a = NewStream();
  Stream& b = NewStream();
  auto first = Submit(&a);
  scheduler_->RunOnce();
  EXPECT_EQ(replicas_[0]->runs(), 0);
  clock_.Advance(absl::Milliseconds(10));
  auto second = Submit(&b);
  scheduler_->RunOnce();
  EXPECT_EQ(replicas_[0]->runs(), 0);
  EXPECT_EQ(first->state(), dserve::v1::JOB_STATE_QUEUED);
  clock_.Advance(absl::Milliseconds(10));
  scheduler_->RunOnce();
  ASSERT_EQ(replicas_[0]->runs(), 1);
  EXPECT_EQ(replicas_[0]->last_plan()->items_size(), 2);
  EXPECT_EQ(a.started_batch_size(), 2);
  EXPECT_EQ(b.started_batch_size(), 2);
}

TEST_F(SchedulerBatchingTest, CancelOneJobOfRunningBatch) {
  MakeScheduler(1, 3, absl::ZeroDuration());
  std::vector<Stream*> s;
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 3; ++i) {
    s.push_back(&NewStream());
    jobs.push_back(Submit(s.back()));
  }
  scheduler_->RunOnce();
  ASSERT_EQ(replicas_[0]->last_plan()->items_size(), 3);
  replicas_[0]->EmitStep(1);
  scheduler_->Cancel(jobs[1], absl::CancelledError("client j-2 went away"));
  scheduler_->RunOnce();
  // The cancelled job ends at once; the plan keeps running for the others.
  EXPECT_EQ(jobs[1]->state(), dserve::v1::JOB_STATE_CANCELLED);
  ASSERT_TRUE(s[1]->ended());
  EXPECT_EQ(s[1]->last().status.message(), "client j-2 went away");
  EXPECT_FALSE(replicas_[0]->cancel_requested());
  const size_t events_after_cancel = s[1]->events.size();
  replicas_[0]->EmitStep(2);
  replicas_[0]->Complete();
  scheduler_->RunOnce();
  EXPECT_EQ(jobs[0]->state(), dserve::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(jobs[2]->state(), dserve::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(jobs[1]->state(), dserve::v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(s[1]->events.size(), events_after_cancel);
}

TEST_F(SchedulerBatchingTest, CancelEveryJobOfBatchCancelsThePlan) {
  MakeScheduler(1, 2, absl::ZeroDuration());
  Stream& a = NewStream();
  Stream& b = NewStream();
  auto first = Submit(&a);
  auto second = Submit(&b);
  scheduler_->RunOnce();
  scheduler_->Cancel(first, absl::CancelledError("first cancelled"));
  scheduler_->RunOnce();
  EXPECT_EQ(first->state(), dserve::v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(replicas_[0]->cancel_requested());
  scheduler_->Cancel(second, absl::CancelledError("second cancelled"));
  scheduler_->RunOnce();
  EXPECT_TRUE(replicas_[0]->cancel_requested());
  replicas_[0]->EndWith(absl::CancelledError("Execute cancelled"));
  scheduler_->RunOnce();
  EXPECT_EQ(second->state(), dserve::v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(b.last().status.message(), "second cancelled");
}

TEST_F(SchedulerBatchingTest, ReplicaFailureRequeuesEveryJobOfTheBatchOnce) {
  MakeScheduler(2, 2, absl::ZeroDuration());
  replicas_[1]->SetState(dserve::v1::REPLICA_STATE_STARTING);
  Stream& a = NewStream();
  Stream& b = NewStream();
  auto first = Submit(&a);
  auto second = Submit(&b);
  scheduler_->RunOnce();
  ASSERT_EQ(replicas_[0]->last_plan()->items_size(), 2);
  replicas_[0]->EndWith(absl::UnavailableError("rank 1 died"),
                        dserve::v1::REPLICA_STATE_FAILED);
  replicas_[1]->SetState(dserve::v1::REPLICA_STATE_READY);
  scheduler_->RunOnce();
  scheduler_->RunOnce();
  ASSERT_EQ(replicas_[1]->runs(), 1);
  EXPECT_EQ(replicas_[1]->last_plan()->items_size(), 2);
  EXPECT_EQ(first->retries(), 1);
  EXPECT_EQ(second->retries(), 1);
  replicas_[1]->EndWith(absl::UnavailableError("rank 0 died too"),
                        dserve::v1::REPLICA_STATE_READY);
  scheduler_->RunOnce();
  // Each job is retried once only.
  EXPECT_EQ(first->state(), dserve::v1::JOB_STATE_FAILED);
  EXPECT_EQ(second->state(), dserve::v1::JOB_STATE_FAILED);
}

// Issue 16, finding 4: a batch that fails as a whole does not fail its
// jobs. Each runs again alone; the bad one fails with its own error and no
// client ever sees the batch's error text.
TEST_F(SchedulerBatchingTest, FailedBatchRunsEachJobAloneForItsOwnVerdict) {
  MakeScheduler(1, 4, absl::ZeroDuration());
  std::vector<Stream*> streams;
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 4; ++i) {
    streams.push_back(&NewStream());
    jobs.push_back(Submit(streams.back()));
  }
  scheduler_->RunOnce();
  ASSERT_TRUE(replicas_[0]->running());
  ASSERT_EQ(replicas_[0]->last_plan()->items_size(), 4);
  const std::string bad_id = jobs[2]->id();
  replicas_[0]->EndWith(absl::InvalidArgumentError(
      "prompt of job " + bad_id + ": the secret words of client C"));
  int solo_plans = 0;
  for (int round = 0; round < 4; ++round) {
    scheduler_->RunOnce();  // routes the end of the previous plan
    scheduler_->RunOnce();  // dispatches the next
    ASSERT_TRUE(replicas_[0]->running()) << "round " << round;
    const auto plan = *replicas_[0]->last_plan();
    ASSERT_EQ(plan.items_size(), 1) << "a job of a failed batch ran batched";
    ++solo_plans;
    if (plan.items(0).job_id() == bad_id) {
      replicas_[0]->EndWith(absl::InvalidArgumentError(
          "prompt of job " + bad_id + ": its own error"));
    } else {
      replicas_[0]->Complete();
    }
  }
  scheduler_->RunOnce();
  EXPECT_EQ(solo_plans, 4);
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(jobs[i]->id());
    ASSERT_TRUE(streams[i]->ended());
    const JobEvent& end = streams[i]->last();
    EXPECT_THAT(std::string(end.status.message()),
                ::testing::Not(::testing::HasSubstr("secret words")));
    EXPECT_EQ(jobs[i]->retries(), 0) << "isolation is not a retry";
    if (i == 2) {
      EXPECT_EQ(jobs[i]->state(), dserve::v1::JOB_STATE_FAILED);
      EXPECT_EQ(end.status.message(), "prompt of job " + bad_id +
                                          ": its own error");
    } else {
      EXPECT_EQ(jobs[i]->state(), dserve::v1::JOB_STATE_SUCCEEDED);
      EXPECT_NE(end.result, nullptr);
    }
  }
}

TEST_F(SchedulerBatchingTest, CancelledOrLostBatchesAreNotIsolated) {
  MakeScheduler(1, 4, absl::ZeroDuration());
  Stream& a = NewStream();
  Stream& b = NewStream();
  auto ja = Submit(&a);
  auto jb = Submit(&b);
  scheduler_->RunOnce();
  ASSERT_EQ(replicas_[0]->last_plan()->items_size(), 2);
  // A replica's own DEADLINE_EXCEEDED says nothing about one job: both end.
  replicas_[0]->EndWith(absl::DeadlineExceededError("plan deadline"));
  scheduler_->RunOnce();
  EXPECT_EQ(ja->state(), dserve::v1::JOB_STATE_DEADLINE_EXCEEDED);
  EXPECT_EQ(jb->state(), dserve::v1::JOB_STATE_DEADLINE_EXCEEDED);
  EXPECT_FALSE(ja->run_alone());
}

}  // namespace
}  // namespace dserve::scheduler
