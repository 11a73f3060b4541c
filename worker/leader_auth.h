#ifndef DSERVE_WORKER_LEADER_AUTH_H_
#define DSERVE_WORKER_LEADER_AUTH_H_

// SecretCheckedLeader: the ReplicaLeader service as rank 0 registers it.
// Every call must carry the replica's secret (common/replica_secret.h) in
// its metadata, else it ends UNAUTHENTICATED before the wrapped service sees
// it: a local process that finds the loopback port cannot run a plan no
// frontend validated (issue 16, finding 6).
//
// Both are gRPC callback services (ReplicaLeader::CallbackService). Borrows
// the wrapped service (it must outlive this one). Thread-safe (the secret is
// immutable); nothing blocks. A method added to the proto and not forwarded
// here answers UNIMPLEMENTED: it fails closed.

#include <string>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "proto/dserve/internal/v1/replica_leader.grpc.pb.h"

namespace dserve::worker {

// OK when `context` carries common::kReplicaSecretMetadata equal to
// `secret` (constant-time compare); UNAUTHENTICATED otherwise. The message
// never repeats what the caller sent.
absl::Status CheckReplicaSecret(const grpc::ServerContextBase& context,
                                const std::string& secret);

class SecretCheckedLeader final
    : public dserve::internal::v1::ReplicaLeader::CallbackService {
 public:
  // `secret` must not be empty.
  SecretCheckedLeader(
      dserve::internal::v1::ReplicaLeader::CallbackService* leader,
      std::string secret);

  grpc::ServerWriteReactor<dserve::internal::v1::ExecutionEvent>* Execute(
      grpc::CallbackServerContext* context,
      const dserve::internal::v1::ExecutionPlan* plan) override;
  grpc::ServerUnaryReactor* GetStatus(
      grpc::CallbackServerContext* context,
      const dserve::internal::v1::GetStatusRequest* request,
      dserve::internal::v1::ReplicaStatus* response) override;

 private:
  dserve::internal::v1::ReplicaLeader::CallbackService* const leader_;
  const std::string secret_;
};

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_LEADER_AUTH_H_
