#include "server/grpc_status_util.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace dserve::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string message(status.message());
  if (message.empty()) {
    message = absl::StrCat(absl::StatusCodeToString(status.code()),
                           " without detail (a dserve bug: please report "
                           "the request that caused it)");
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message);
}

}  // namespace dserve::server
