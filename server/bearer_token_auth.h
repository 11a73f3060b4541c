#ifndef DSERVE_SERVER_BEARER_TOKEN_AUTH_H_
#define DSERVE_SERVER_BEARER_TOKEN_AUTH_H_

// BearerTokenAuth: the optional shared-secret check of the public service.
// A call is admitted when its "authorization" metadata is exactly
// "Bearer <token>". The health service and reflection do not use it, so
// Kubernetes probes need no secret.
//
// Owns a copy of the token. Immutable after construction: thread-safe.
// Nothing blocks.

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace dserve::server {

class BearerTokenAuth {
 public:
  // An empty `token` admits every call.
  explicit BearerTokenAuth(std::string token);

  bool enabled() const { return !token_.empty(); }

  // OK, or UNAUTHENTICATED saying what was missing or wrong (never the
  // expected token).
  absl::Status Check(
      const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

 private:
  const std::string token_;
};

// Who is calling, for scoping client-chosen keys (client_request_id):
// "bearer:<hash of the presented credential>" when the call carries an
// "authorization: Bearer <x>" header (checked or not), else "anonymous".
// The credential itself never appears in the result.
std::string CallerPrincipal(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

// Reads a token file: the first line, surrounding whitespace removed.
// INVALID_ARGUMENT naming `flag` when the file cannot be read or holds no
// token.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path,
                                          const std::string& flag);

}  // namespace dserve::server

#endif  // DSERVE_SERVER_BEARER_TOKEN_AUTH_H_
