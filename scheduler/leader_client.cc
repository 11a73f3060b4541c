#include "scheduler/leader_client.h"

#include <utility>

#include "absl/synchronization/mutex.h"
#include "common/replica_secret.h"
#include "common/rpc_status.h"
#include "grpcpp/grpcpp.h"
#include "proto/dserve/internal/v1/replica_leader.grpc.pb.h"

namespace dserve::scheduler {
namespace {

using ::dserve::internal::v1::ExecutionEvent;
using ::dserve::internal::v1::ExecutionPlan;
using ::dserve::internal::v1::ReplicaLeader;

// One Execute call. Holds a reference to itself from StartCall until
// OnDone, so it outlives whoever else drops it.
class PlanCallReactor final : public grpc::ClientReadReactor<ExecutionEvent>,
                              public PlanStream {
 public:
  PlanCallReactor(ExecutionPlan plan, LeaderLink::EventCallback on_event,
                  LeaderLink::EndCallback on_end, std::string context)
      : plan_(std::move(plan)),
        on_event_(std::move(on_event)),
        on_end_(std::move(on_end)),
        context_(std::move(context)) {}

  void Start(std::shared_ptr<PlanCallReactor> self, ReplicaLeader::Stub& stub,
             const std::string& secret, absl::Time deadline) {
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
    // Keep this alive until the end of the function, whoever else lets go.
    std::shared_ptr<PlanCallReactor> self = std::move(self_);
    on_end_(common::FromGrpcStatus(status, context_));
  }

 private:
  grpc::ClientContext call_;
  const ExecutionPlan plan_;
  ExecutionEvent event_;
  const LeaderLink::EventCallback on_event_;
  const LeaderLink::EndCallback on_end_;
  const std::string context_;
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
        plan, std::move(on_event), std::move(on_end), context_);
    reactor->Start(reactor, *stub_, secret_, deadline);
    return reactor;
  }

 private:
  const std::string address_;
  const std::string secret_;
  const std::string context_;
  std::unique_ptr<ReplicaLeader::Stub> stub_;
};

}  // namespace

std::unique_ptr<LeaderLink> NewGrpcLeaderLink(const std::string& address,
                                              const std::string& secret,
                                              const std::string& context) {
  return std::make_unique<GrpcLeaderLink>(address, secret, context);
}

}  // namespace dserve::scheduler
