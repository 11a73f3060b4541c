#include "worker/leader_auth.h"

#include <utility>

#include "absl/strings/string_view.h"
#include "common/replica_secret.h"
#include "common/rpc_status.h"
#include "spdlog/spdlog.h"
#include "worker/execute_reactor.h"

namespace dserve::worker {

absl::Status CheckReplicaSecret(const grpc::ServerContextBase& context,
                                const std::string& secret) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find(common::kReplicaSecretMetadata);
  // One value only: which of several a check would see is not defined.
  const bool one_value =
      found != metadata.end() &&
      metadata.count(common::kReplicaSecretMetadata) == 1;
  if (secret.empty() || !one_value ||
      !common::SecretsEqual(
          absl::string_view(found->second.data(), found->second.size()),
          secret)) {
    return absl::UnauthenticatedError(
        "the replica leader serves only its own frontend: the call lacks "
        "the replica's secret (metadata x-dserve-replica-secret)");
  }
  return absl::OkStatus();
}

SecretCheckedLeader::SecretCheckedLeader(
    dserve::internal::v1::ReplicaLeader::CallbackService* leader,
    std::string secret)
    : leader_(leader), secret_(std::move(secret)) {}

grpc::ServerWriteReactor<dserve::internal::v1::ExecutionEvent>*
SecretCheckedLeader::Execute(grpc::CallbackServerContext* context,
                             const dserve::internal::v1::ExecutionPlan* plan) {
  if (absl::Status s = CheckReplicaSecret(*context, secret_); !s.ok()) {
    spdlog::warn("[job -] refused an Execute from {}: no valid secret",
                 context->peer());
    return FinishedExecuteReactor(s);
  }
  return leader_->Execute(context, plan);
}

grpc::ServerUnaryReactor* SecretCheckedLeader::GetStatus(
    grpc::CallbackServerContext* context,
    const dserve::internal::v1::GetStatusRequest* request,
    dserve::internal::v1::ReplicaStatus* response) {
  if (absl::Status s = CheckReplicaSecret(*context, secret_); !s.ok()) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(common::ToGrpcStatus(s));
    return reactor;
  }
  return leader_->GetStatus(context, request, response);
}

}  // namespace dserve::worker
