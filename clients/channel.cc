#include "clients/channel.h"

#include <cstdint>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_format.h"
#include "clients/retry_service_config.inc"

namespace dserve::clients {

const char* RetryServiceConfigJson() { return kRetryServiceConfigJson; }

std::shared_ptr<grpc::Channel> CreateDserveChannel(
    const std::string& target,
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(kRetryServiceConfigJson);
  // Retries are on by default in gRPC >= 1.40; said here so nothing depends
  // on that default.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 1);
  return grpc::CreateCustomChannel(target, std::move(credentials), args);
}

std::string NewClientRequestId() {
  absl::BitGen gen;
  return absl::StrFormat("cli-%016x", absl::Uniform<uint64_t>(gen));
}

}  // namespace dserve::clients
