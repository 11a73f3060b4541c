#include "common/rpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace dserve::common {

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

absl::Status FromGrpcStatus(const grpc::Status& status,
                            absl::string_view context) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(
      static_cast<absl::StatusCode>(status.error_code()),
      context.empty() ? status.error_message()
                      : absl::StrCat(context, ": ", status.error_message()));
}

}  // namespace dserve::common
