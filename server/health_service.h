#ifndef DSERVE_SERVER_HEALTH_SERVICE_H_
#define DSERVE_SERVER_HEALTH_SERVICE_H_

// HealthService: grpc.health.v1.Health (Check and Watch) for dserve_server,
// instead of gRPC's default health service.
//
// Why not the default: it answers SERVING for the whole server ("") from
// the moment BuildAndStart returns until the first SetServingStatus, so a
// probe in those few milliseconds saw a server with no replica as ready.
// Here every name the server will ever report starts NOT_SERVING (or what
// the constructor is given) before the port is bound, so readiness is never
// claimed early. Names not given to the constructor or SetServingStatus are
// NOT_FOUND (Check) / SERVICE_UNKNOWN (Watch), as in the default service.
//
// Wiring: Server registers it as a service and hands gRPC a
// HealthStatusForwarder (grpc::HealthCheckServiceServerBuilderOption), so
// grpc::Server::GetHealthCheckService() and gRPC's own shutdown reach it.
//
// Thread-safe. Check does not block; Watch blocks its gRPC thread until the
// call is cancelled or Shutdown is called, writing each status change.

#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

namespace dserve::server {

class HealthService final : public grpc::health::v1::Health::Service {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  // `initial`: service name -> serving, known from the start.
  explicit HealthService(const std::map<std::string, bool>& initial);

  void SetServingStatus(const std::string& service, bool serving);
  // Every known name NOT_SERVING, for good: later SetServingStatus calls are
  // ignored and open Watch streams end.
  void Shutdown();

  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;
  grpc::Status Watch(
      grpc::ServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request,
      grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer)
      override;

 private:
  // SERVICE_UNKNOWN for a name never set.
  ServingStatus StatusLocked(const std::string& service) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, bool> serving_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  // Bumped on every change, so watchers wake for it.
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
};

// What gRPC calls through grpc::Server::GetHealthCheckService(): forwards
// to a HealthService that must outlive the grpc::Server.
class HealthStatusForwarder final : public grpc::HealthCheckServiceInterface {
 public:
  explicit HealthStatusForwarder(HealthService* target) : target_(target) {}
  void SetServingStatus(const std::string& service_name,
                        bool serving) override {
    target_->SetServingStatus(service_name, serving);
  }
  // gRPC's "every service": the server's name "".
  void SetServingStatus(bool serving) override {
    target_->SetServingStatus("", serving);
  }
  void Shutdown() override { target_->Shutdown(); }

 private:
  HealthService* const target_;
};

}  // namespace dserve::server

#endif  // DSERVE_SERVER_HEALTH_SERVICE_H_
