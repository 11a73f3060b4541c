#include "scheduler/leader_client.h"

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/replica_secret.h"
#include "common/rpc_status.h"
#include "grpcpp/grpcpp.h"
#include "proto/dserve/internal/v1/replica_leader.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace dserve::scheduler {
namespace {

using ::dserve::internal::v1::ExecutionEvent;
using ::dserve::internal::v1::ExecutionPlan;
using ::dserve::internal::v1::ReplicaLeader;

class PlanCallReactor;

// The Execute calls of one link whose OnDone has not returned yet.
//
// Why the link waits for them: a call's ClientContext holds a reference to
// the channel, and the reactor is freed at the end of its OnDone, on one of
// gRPC's callback ("nexting") threads. Were that the channel's last
// reference, ~Channel would release gRPC's process-wide callback queue from
// the very thread that queue's shutdown joins, and the thread would then
// poll the freed queue (an abort in grpc_cq_internal_unref, seen in
// //scheduler:replica_test when the replica was shut down right as a plan
// ended). So ~GrpcLeaderLink cancels what still runs and waits until every
// OnDone has returned: the link's own channel reference is always the last.
class RunningCalls {
 public:
  void Add(PlanCallReactor* call, std::weak_ptr<PlanCallReactor> weak) {
    absl::MutexLock lock(&mu_);
    calls_.emplace(call, std::move(weak));
  }
  // Called first thing in OnDone: the call can no longer be cancelled.
  void Ending(PlanCallReactor* call) {
    absl::MutexLock lock(&mu_);
    calls_.erase(call);
    ++ending_;
  }
  // Called last in OnDone, after the reactor may have been freed.
  void Ended() {
    absl::MutexLock lock(&mu_);
    --ending_;
  }
  std::vector<std::shared_ptr<PlanCallReactor>> Running() {
    std::vector<std::shared_ptr<PlanCallReactor>> out;
    absl::MutexLock lock(&mu_);
    for (auto& [call, weak] : calls_) {
      if (auto strong = weak.lock()) out.push_back(std::move(strong));
    }
    return out;
  }
  // True when every call's OnDone returned before `timeout`.
  bool AwaitNone(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(this, &RunningCalls::None),
                                timeout);
  }

 private:
  bool None() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return calls_.empty() && ending_ == 0;
  }

  absl::Mutex mu_;
  std::map<PlanCallReactor*, std::weak_ptr<PlanCallReactor>> calls_
      ABSL_GUARDED_BY(mu_);
  int ending_ ABSL_GUARDED_BY(mu_) = 0;
};

// One Execute call. Holds a reference to itself from StartCall until
// OnDone, so it outlives whoever else drops it.
class PlanCallReactor final : public grpc::ClientReadReactor<ExecutionEvent>,
                              public PlanStream {
 public:
  PlanCallReactor(ExecutionPlan plan, LeaderLink::EventCallback on_event,
                  LeaderLink::EndCallback on_end, std::string context,
                  std::shared_ptr<RunningCalls> running)
      : plan_(std::move(plan)),
        on_event_(std::move(on_event)),
        on_end_(std::move(on_end)),
        context_(std::move(context)),
        running_(std::move(running)) {}

  void Start(std::shared_ptr<PlanCallReactor> self, ReplicaLeader::Stub& stub,
             const std::string& secret, absl::Time deadline) {
    running_->Add(this, self);
    self_ = std::move(self);
    call_.AddMetadata(common::kReplicaSecretMetadata, secret);
    if (deadline != absl::InfiniteFuture()) {
      call_.set_deadline(absl::ToChronoTime(deadline));
    }
    stub.async()->Execute(&call_, &plan_, this);
    StartRead(&event_);
    StartCall();
  }

  void Cancel() override { call_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // The stream ended; OnDone follows.
    if (on_event_) on_event_(event_);
    StartRead(&event_);
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<RunningCalls> running = running_;
    running->Ending(this);
    {
      // Alive until the end of this block, whoever else lets go; after it
      // `this` may be freed.
      std::shared_ptr<PlanCallReactor> self = std::move(self_);
      on_end_(common::FromGrpcStatus(status, context_));
    }
    running->Ended();
  }

 private:
  grpc::ClientContext call_;
  const ExecutionPlan plan_;
  ExecutionEvent event_;
  const LeaderLink::EventCallback on_event_;
  const LeaderLink::EndCallback on_end_;
  const std::string context_;
  const std::shared_ptr<RunningCalls> running_;
  std::shared_ptr<PlanCallReactor> self_;
};

class GrpcLeaderLink final : public LeaderLink {
 public:
  GrpcLeaderLink(const std::string& address, std::string secret,
                 std::string context)
      : address_(address),
        secret_(std::move(secret)),
        context_(std::move(context)) {
    // The internal channel carries whole results (every frame of a video),
    // so it has no receive limit.
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    stub_ = ReplicaLeader::NewStub(grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args));
  }

  ~GrpcLeaderLink() override {
    for (const auto& call : running_->Running()) call->Cancel();
    // A cancelled call ends at once on the client side; the bound only
    // guards against a callback that blocks.
    if (!running_->AwaitNone(absl::Seconds(10))) {
      spdlog::error("{}: an Execute call did not end within 10 s of its "
                    "cancellation; closing the channel anyway",
                    context_);
    }
  }

  std::string address() const override { return address_; }

  absl::StatusOr<dserve::internal::v1::ReplicaStatus> GetStatus(
      absl::Time deadline, bool wait_for_ready) override {
    grpc::ClientContext call;
    call.AddMetadata(common::kReplicaSecretMetadata, secret_);
    call.set_deadline(absl::ToChronoTime(deadline));
    call.set_wait_for_ready(wait_for_ready);
    dserve::internal::v1::ReplicaStatus status;
    grpc::Status rpc = stub_->GetStatus(
        &call, dserve::internal::v1::GetStatusRequest(), &status);
    if (!rpc.ok()) return common::FromGrpcStatus(rpc);
    return status;
  }

  std::shared_ptr<PlanStream> Execute(const ExecutionPlan& plan,
                                      absl::Time deadline,
                                      EventCallback on_event,
                                      EndCallback on_end) override {
    auto reactor = std::make_shared<PlanCallReactor>(
        plan, std::move(on_event), std::move(on_end), context_, running_);
    reactor->Start(reactor, *stub_, secret_, deadline);
    return reactor;
  }

 private:
  const std::string address_;
  const std::string secret_;
  const std::string context_;
  const std::shared_ptr<RunningCalls> running_ =
      std::make_shared<RunningCalls>();
  std::unique_ptr<ReplicaLeader::Stub> stub_;
};

}  // namespace

std::unique_ptr<LeaderLink> NewGrpcLeaderLink(const std::string& address,
                                              const std::string& secret,
                                              const std::string& context) {
  return std::make_unique<GrpcLeaderLink>(address, secret, context);
}

}  // namespace dserve::scheduler
