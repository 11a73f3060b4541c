#include "scheduler/leader_client.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/dserve/internal/v1/replica_leader.grpc.pb.h"

namespace dserve::scheduler {
namespace {

using ::dserve::internal::v1::ExecutionEvent;
using ::dserve::internal::v1::ExecutionPlan;

// A leader whose Execute writes `steps` step events, then ends OK; or, with
// `hang`, writes nothing and ends only when the client cancels.
class FakeLeader final
    : public dserve::internal::v1::ReplicaLeader::CallbackService {
 public:
  explicit FakeLeader(bool hang) : hang_(hang) {}

  grpc::ServerWriteReactor<ExecutionEvent>* Execute(
      grpc::CallbackServerContext* context,
      const ExecutionPlan* plan) override {
    class Writer : public grpc::ServerWriteReactor<ExecutionEvent> {
     public:
      Writer(int steps, bool hang) : left_(steps), hang_(hang) {
        if (!hang_) Next();
      }
      void OnWriteDone(bool ok) override {
        if (!ok) return Finish(grpc::Status::CANCELLED);
        Next();
      }
      void OnCancel() override {
        if (hang_) Finish(grpc::Status::CANCELLED);
      }
      void OnDone() override { delete this; }

     private:
      void Next() {
        if (left_ == 0) return Finish(grpc::Status::OK);
        event_.mutable_step()->set_step(left_--);
        StartWrite(&event_);
      }
      int left_;
      bool hang_;
      ExecutionEvent event_;
    };
    return new Writer(plan->num_inference_steps(), hang_);
  }

 private:
  const bool hang_;
};

class LeaderClientTest : public ::testing::Test {
 protected:
  void Start(bool hang) {
    leader_ = std::make_unique<FakeLeader>(hang);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(leader_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }
  std::string Address() const { return absl::StrCat("127.0.0.1:", port_); }

  std::unique_ptr<FakeLeader> leader_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

ExecutionPlan Plan(int steps) {
  ExecutionPlan plan;
  plan.set_num_inference_steps(steps);
  return plan;
}

TEST_F(LeaderClientTest, EventsThenOneEnd) {
  Start(/*hang=*/false);
  std::unique_ptr<LeaderLink> link =
      NewGrpcLeaderLink(Address(), "secret", "replica 0");
  std::atomic<int> events{0};
  absl::Notification ended;
  absl::Status end_status = absl::UnknownError("unset");
  std::shared_ptr<PlanStream> stream = link->Execute(
      Plan(3), absl::Now() + absl::Seconds(20),
      [&](const ExecutionEvent& e) {
        EXPECT_TRUE(e.has_step());
        ++events;
      },
      [&](absl::Status s) {
        end_status = std::move(s);
        ended.Notify();
      });
  ASSERT_TRUE(ended.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_TRUE(end_status.ok()) << end_status;
  EXPECT_EQ(events.load(), 3);
}

// The link's channel must never be freed by a call ending on one of gRPC's
// callback threads (it aborted in grpc_cq_internal_unref): destroying the
// link waits until every running call's on_end has returned, even when
// on_end is slow and nobody else holds the call.
TEST_F(LeaderClientTest, DestroyingTheLinkWaitsForOnEndToReturn) {
  Start(/*hang=*/false);
  std::unique_ptr<LeaderLink> link =
      NewGrpcLeaderLink(Address(), "secret", "replica 0");
  absl::Notification in_on_end;
  std::atomic<bool> on_end_returned{false};
  link->Execute(Plan(1), absl::InfiniteFuture(), nullptr,
                [&](absl::Status) {
                  in_on_end.Notify();
                  absl::SleepFor(absl::Milliseconds(300));
                  on_end_returned = true;
                });  // The stream is dropped: the call owns itself.
  ASSERT_TRUE(in_on_end.WaitForNotificationWithTimeout(absl::Seconds(20)));
  link.reset();
  EXPECT_TRUE(on_end_returned.load());
}

// A call still running when the link goes is cancelled, and the
// destructor returns once its on_end ran with the cancellation.
TEST_F(LeaderClientTest, DestroyingTheLinkCancelsRunningCalls) {
  Start(/*hang=*/true);
  std::unique_ptr<LeaderLink> link =
      NewGrpcLeaderLink(Address(), "secret", "replica 0");
  std::atomic<bool> ended{false};
  absl::StatusCode code = absl::StatusCode::kOk;
  std::shared_ptr<PlanStream> stream = link->Execute(
      Plan(1), absl::InfiniteFuture(), nullptr, [&](absl::Status s) {
        code = s.code();
        ended = true;
      });
  absl::SleepFor(absl::Milliseconds(200));  // The call reaches the leader.
  EXPECT_FALSE(ended.load());
  const absl::Time start = absl::Now();
  link.reset();
  EXPECT_TRUE(ended.load());
  EXPECT_EQ(code, absl::StatusCode::kCancelled);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  stream->Cancel();  // Harmless after the end.
}

}  // namespace
}  // namespace dserve::scheduler
