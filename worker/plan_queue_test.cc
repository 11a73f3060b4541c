#include "worker/plan_queue.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionEvent;
using ::dserve::internal::v1::ExecutionPlan;

std::shared_ptr<PlanCall> MakeCall(const std::string& job) {
  ExecutionPlan plan;
  plan.add_items()->set_job_id(job);
  return std::make_shared<PlanCall>(plan);
}

TEST(PlanQueueTest, PopsInArrivalOrderAndTimesOutWhenEmpty) {
  PlanQueue queue(4);
  ASSERT_TRUE(queue.Push(MakeCall("a")).ok());
  ASSERT_TRUE(queue.Push(MakeCall("b")).ok());
  EXPECT_EQ(queue.size(), 2);
  EXPECT_EQ(queue.PopFor(absl::ZeroDuration())->plan().items(0).job_id(), "a");
  EXPECT_EQ(queue.PopFor(absl::ZeroDuration())->plan().items(0).job_id(), "b");
  EXPECT_EQ(queue.PopFor(absl::Milliseconds(10)), nullptr);
}

TEST(PlanQueueTest, FullQueueIsResourceExhaustedWithItsCapacity) {
  PlanQueue queue(1);
  ASSERT_TRUE(queue.Push(MakeCall("a")).ok());
  absl::Status s = queue.Push(MakeCall("b"));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("capacity 1"), absl::string_view::npos) << s;
}

TEST(PlanQueueTest, CancelledCallsGiveUpTheirPlace) {
  PlanQueue queue(1);
  auto gone = MakeCall("gone");
  ASSERT_TRUE(queue.Push(gone).ok());
  gone->Cancel();
  ASSERT_TRUE(queue.Push(MakeCall("b")).ok());
  EXPECT_EQ(queue.size(), 1);
  EXPECT_TRUE(gone->finished());
  EXPECT_EQ(queue.PopFor(absl::ZeroDuration())->plan().items(0).job_id(), "b");
}

TEST(PlanQueueTest, CloseFinishesWaitingCallsAndRejectsNewOnes) {
  PlanQueue queue(2);
  auto call = MakeCall("a");
  ASSERT_TRUE(queue.Push(call).ok());
  queue.Close(absl::UnavailableError("stopping"));
  ExecutionEvent event;
  absl::Status status;
  EXPECT_EQ(call->WaitNext(absl::ZeroDuration(), &event, &status),
            PlanCall::Next::kFinished);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(queue.Push(MakeCall("b")).code(), absl::StatusCode::kUnavailable);
}

TEST(PlanQueueTest, PopWakesWhenACallArrives) {
  PlanQueue queue(1);
  std::thread producer([&queue] {
    absl::SleepFor(absl::Milliseconds(20));
    ASSERT_TRUE(queue.Push(MakeCall("late")).ok());
  });
  std::shared_ptr<PlanCall> call = queue.PopFor(absl::Seconds(10));
  producer.join();
  ASSERT_NE(call, nullptr);
  EXPECT_EQ(call->plan().items(0).job_id(), "late");
}

TEST(PlanCallTest, EventsComeOutInOrderBeforeTheFinalStatus) {
  auto call = MakeCall("a");
  ExecutionEvent e1;
  e1.mutable_step()->set_step(1);
  ExecutionEvent e2;
  e2.mutable_step()->set_step(2);
  call->Push(e1);
  call->Push(e2);
  call->Finish(absl::OkStatus());
  // Pushes after Finish are dropped.
  call->Push(e1);
  call->Finish(absl::InternalError("ignored"));

  ExecutionEvent event;
  absl::Status status = absl::UnknownError("unset");
  ASSERT_EQ(call->WaitNext(absl::ZeroDuration(), &event, &status),
            PlanCall::Next::kEvent);
  EXPECT_EQ(event.step().step(), 1);
  ASSERT_EQ(call->WaitNext(absl::ZeroDuration(), &event, &status),
            PlanCall::Next::kEvent);
  EXPECT_EQ(event.step().step(), 2);
  ASSERT_EQ(call->WaitNext(absl::ZeroDuration(), &event, &status),
            PlanCall::Next::kFinished);
  EXPECT_TRUE(status.ok());
}

TEST(PlanCallTest, WaitTimesOutAndCancelIsVisible) {
  auto call = MakeCall("a");
  ExecutionEvent event;
  absl::Status status;
  EXPECT_EQ(call->WaitNext(absl::Milliseconds(5), &event, &status),
            PlanCall::Next::kTimeout);
  EXPECT_FALSE(call->cancelled());
  call->Cancel();
  EXPECT_TRUE(call->cancelled());
  EXPECT_FALSE(call->finished());
}

// The Execute reactor writes without polling: every Push and Finish runs
// the wake-up, which may read the call back at once (no lock held).
TEST(PlanCallTest, WakeupRunsAfterEveryPushAndFinish) {
  auto call = MakeCall("a");
  std::vector<int> seen;
  int finishes = 0;
  call->SetWakeup([&] {
    ExecutionEvent event;
    absl::Status status;
    switch (call->TryNext(&event, &status)) {
      case PlanCall::Next::kEvent:
        seen.push_back(event.step().step());
        break;
      case PlanCall::Next::kFinished:
        ++finishes;
        break;
      case PlanCall::Next::kTimeout:
        break;
    }
  });
  ExecutionEvent e;
  e.mutable_step()->set_step(1);
  call->Push(e);
  e.mutable_step()->set_step(2);
  call->Push(e);
  call->Finish(absl::OkStatus());
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  EXPECT_EQ(finishes, 1);
  call->SetWakeup(nullptr);
  call->Push(e);  // Ignored after Finish, and no wake-up.
  EXPECT_EQ(finishes, 1);
  ExecutionEvent none;
  absl::Status status;
  EXPECT_EQ(call->TryNext(&none, &status), PlanCall::Next::kFinished);
}

}  // namespace
}  // namespace dserve::worker
