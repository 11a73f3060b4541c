#include "server/health_service.h"

#include <chrono>

#include "absl/time/time.h"

namespace dserve::server {
namespace {

using ::grpc::health::v1::HealthCheckResponse;

// How often a Watch looks at its call's cancellation while nothing changes.
constexpr absl::Duration kWatchPoll = absl::Milliseconds(200);

}  // namespace

HealthService::HealthService(const std::map<std::string, bool>& initial)
    : serving_(initial) {}

void HealthService::SetServingStatus(const std::string& service,
                                     bool serving) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  auto [it, inserted] = serving_.emplace(service, serving);
  if (!inserted && it->second == serving) return;
  it->second = serving;
  ++version_;
}

void HealthService::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  shut_down_ = true;
  for (auto& [name, serving] : serving_) serving = false;
  ++version_;
}

HealthService::ServingStatus HealthService::StatusLocked(
    const std::string& service) const {
  auto it = serving_.find(service);
  if (it == serving_.end()) return HealthCheckResponse::SERVICE_UNKNOWN;
  return it->second ? HealthCheckResponse::SERVING
                    : HealthCheckResponse::NOT_SERVING;
}

grpc::Status HealthService::Check(
    grpc::ServerContext* /*context*/,
    const grpc::health::v1::HealthCheckRequest* request,
    HealthCheckResponse* response) {
  absl::MutexLock lock(&mu_);
  const ServingStatus status = StatusLocked(request->service());
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "no health status for this service name");
  }
  response->set_status(status);
  return grpc::Status::OK;
}

grpc::Status HealthService::Watch(
    grpc::ServerContext* context,
    const grpc::health::v1::HealthCheckRequest* request,
    grpc::ServerWriter<HealthCheckResponse>* writer) {
  int64_t seen = -1;
  bool wrote = false;
  ServingStatus last = HealthCheckResponse::UNKNOWN;
  while (!context->IsCancelled()) {
    ServingStatus status;
    bool shut_down;
    {
      absl::MutexLock lock(&mu_);
      auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return version_ != seen;
      };
      mu_.AwaitWithTimeout(absl::Condition(&changed), kWatchPoll);
      if (version_ == seen) continue;
      seen = version_;
      status = StatusLocked(request->service());
      shut_down = shut_down_;
    }
    // Only changes of this name's status (and always the first answer).
    if (!wrote || status != last) {
      HealthCheckResponse response;
      response.set_status(status);
      if (!writer->Write(response)) break;
      wrote = true;
      last = status;
    }
    if (shut_down) return grpc::Status::OK;
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "health watch ended");
}

}  // namespace dserve::server
