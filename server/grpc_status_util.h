#ifndef DSERVE_SERVER_GRPC_STATUS_UTIL_H_
#define DSERVE_SERVER_GRPC_STATUS_UTIL_H_

// The one place where an internal absl::Status becomes the grpc::Status a
// client sees (after tensorflow/serving's grpc_status_util). Pure functions;
// thread-safe.

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace dserve::server {

// Same code (absl and gRPC share the google.rpc.Code numbering) and
// message. A non-OK status with an empty message gets one naming the code,
// so no client ever sees a bare INTERNAL.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace dserve::server

#endif  // DSERVE_SERVER_GRPC_STATUS_UTIL_H_
