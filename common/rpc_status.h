#ifndef DSERVE_COMMON_RPC_STATUS_H_
#define DSERVE_COMMON_RPC_STATUS_H_

// The one conversion between absl::Status (inside every tier) and
// grpc::Status (on the wire), in both directions (after tensorflow/serving's
// grpc_status_util). absl and gRPC share the google.rpc.Code numbering, so
// both keep the code and the message. Used at every RPC edge: the public
// service and the worker's ReplicaLeader return ToGrpcStatus(...) (also for
// errors they build by hand: ToGrpcStatus(absl::UnavailableError(...))),
// and every client of an RPC (scheduler, CLI, tests) reads the result with
// FromGrpcStatus. Pure functions; thread-safe; nothing blocks.

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace dserve::common {

// Same code and message. A non-OK status with an empty message gets one
// naming the code, so no client ever sees a bare INTERNAL.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Same code and message, the message prefixed with `context` + ": " when
// `context` is not empty (e.g. "replica 1"). OK stays OK.
absl::Status FromGrpcStatus(const grpc::Status& status,
                            absl::string_view context = "");

}  // namespace dserve::common

#endif  // DSERVE_COMMON_RPC_STATUS_H_
