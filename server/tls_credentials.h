#ifndef DSERVE_SERVER_TLS_CREDENTIALS_H_
#define DSERVE_SERVER_TLS_CREDENTIALS_H_

// Server transport credentials from PEM files: plaintext, TLS, or mutual
// TLS (clients must present a certificate signed by the given CA).
// Stateless functions; nothing is kept. They read files (block on disk).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace dserve::server {

struct TlsFiles {
  // PEM certificate chain and private key of the server; both or neither.
  std::string cert;
  std::string key;
  // PEM CA bundle; when set, clients must present a certificate it signed
  // (mutual TLS). Needs cert and key.
  std::string client_ca;
};

// Insecure credentials when no file is named; INVALID_ARGUMENT naming the
// flag (--tls_cert, --tls_key, --tls_client_ca) for a missing pair member,
// an unreadable or empty file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

// The whole file; INVALID_ARGUMENT naming `flag` when unreadable or empty.
absl::StatusOr<std::string> ReadPemFile(const std::string& path,
                                        const std::string& flag);

}  // namespace dserve::server

#endif  // DSERVE_SERVER_TLS_CREDENTIALS_H_
