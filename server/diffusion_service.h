#ifndef DSERVE_SERVER_DIFFUSION_SERVICE_H_
#define DSERVE_SERVER_DIFFUSION_SERVICE_H_

// DiffusionService: the public dserve.v1.DiffusionService on gRPC's
// callback API. Each RPC is a thin edge: validate (RequestValidator) ->
// admit (JobTable + Scheduler) -> stream or return the job; absl::Status
// becomes grpc::Status only through common::ToGrpcStatus.
//
// Does not own the scheduler, job table, validator or clock (the binary
// wires them and they must outlive the service). Thread-safe: gRPC calls
// every method from its own threads. No handler blocks; streams are
// JobEventWriter reactors.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "scheduler/clock.h"
#include "scheduler/job.h"
#include "scheduler/job_table.h"
#include "scheduler/scheduler.h"
#include "server/bearer_token_auth.h"
#include "server/job_event_writer.h"
#include "server/job_id.h"
#include "server/request_validator.h"
#include "server/stream_watchdog.h"

namespace dserve::server {

struct DiffusionServiceOptions {
  // The deployment's layout, reported by GetServerInfo.
  dserve::v1::MeshLayout mesh;
  std::string version = "0.1.0";
  // Sees every job once it is admitted into the queue (not idempotent
  // repeats, not refused ones); may be empty. Runs on the admitting gRPC
  // thread and must not block (metrics attach a listener here).
  std::function<void(const std::shared_ptr<scheduler::Job>&)> on_admitted;
  // When non-empty, every RPC of this service needs the metadata
  // "authorization: Bearer <auth_token>" (else UNAUTHENTICATED).
  std::string auth_token;
  // Instance part of this server's job ids (server/job_id.h); empty = a
  // fresh random one, so ids never repeat across pods.
  std::string instance_id;
  // Sees every request Admit refuses (validation, full queue, draining, no
  // replica, bad token), with the status it got; may be empty. Runs on the
  // gRPC thread and must not block (metrics count here).
  std::function<void(const absl::Status&)> on_rejected;
  // Deadline of a job admitted without one (SubmitJob, the HTTP API, a
  // Generate without a gRPC deadline), from admission
  // (--default_job_deadline_s); infinite = none.
  absl::Duration default_job_deadline = absl::InfiniteDuration();
  // Most open Generate/WatchJob streams per job (--max_watchers_per_job);
  // one more gets RESOURCE_EXHAUSTED naming the limit. 0 = no limit. The
  // Generate that created a job always gets its stream.
  int max_streams_per_job = 0;
  // A stream whose pending write the client has not read for this long is
  // ended with RESOURCE_EXHAUSTED (--watcher_write_timeout_s); infinite =
  // never.
  absl::Duration stream_write_timeout = absl::InfiniteDuration();
  // GetServerInfo publishes each replica's leader address and worker pids
  // only when true (--expose_internals): they name an internal port and
  // processes a client has no business with (issue 16, finding 6).
  bool expose_internals = false;
};

// `info` as GetServerInfo publishes it: without leader_address and pids
// unless `expose_internals`.
dserve::v1::ReplicaInfo PublicReplicaInfo(dserve::v1::ReplicaInfo info,
                                          bool expose_internals);

class DiffusionService final
    : public dserve::v1::DiffusionService::CallbackService {
 public:
  DiffusionService(DiffusionServiceOptions options,
                   scheduler::Scheduler* scheduler, scheduler::JobTable* jobs,
                   const RequestValidator* validator,
                   const scheduler::Clock* clock);

  // From now on new work (Generate, SubmitJob) gets UNAVAILABLE; reads,
  // watches and cancels keep working.
  void StartDraining();
  bool draining() const { return draining_.load(); }
  // Generate and WatchJob streams not yet done (their final status not yet
  // acknowledged by gRPC); a drain waits for zero before closing the port.
  int open_streams() const { return open_streams_.load(); }

  // Validates and queues `request` (or returns the job of the same
  // `principal` that already has its client_request_id, when the request is
  // the same; ALREADY_EXISTS naming the key when it differs). `deadline` is
  // the client's, if any. `on_created` (may be empty) sees a new job before
  // it is queued, so a stream attached there misses no event (and is only
  // called for a new job); if queueing then fails, the job is finished with
  // the error (which ends such a stream) and the error is returned.
  // `principal` is CallerPrincipal() of the call.
  absl::StatusOr<std::shared_ptr<scheduler::Job>> Admit(
      const dserve::v1::GenerateRequest& request,
      std::optional<absl::Time> deadline,
      const std::function<void(const std::shared_ptr<scheduler::Job>&)>&
          on_created = nullptr,
      const std::string& principal = "anonymous");

  // dserve.v1.DiffusionService.
  grpc::ServerWriteReactor<dserve::v1::GenerateEvent>* Generate(
      grpc::CallbackServerContext* context,
      const dserve::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* SubmitJob(
      grpc::CallbackServerContext* context,
      const dserve::v1::SubmitJobRequest* request,
      dserve::v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const dserve::v1::GetJobRequest* request,
                                   dserve::v1::Job* response) override;
  grpc::ServerWriteReactor<dserve::v1::GenerateEvent>* WatchJob(
      grpc::CallbackServerContext* context,
      const dserve::v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* CancelJob(
      grpc::CallbackServerContext* context,
      const dserve::v1::CancelJobRequest* request,
      dserve::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(
      grpc::CallbackServerContext* context,
      const dserve::v1::ListJobsRequest* request,
      dserve::v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const dserve::v1::ListModelsRequest* request,
      dserve::v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(
      grpc::CallbackServerContext* context,
      const dserve::v1::GetServerInfoRequest* request,
      dserve::v1::ServerInfo* response) override;

 private:
  // The client's deadline, or nullopt for "none".
  static std::optional<absl::Time> ClientDeadline(
      const grpc::CallbackServerContext& context);
  // UNAUTHENTICATED unless the call carries the configured bearer token.
  absl::Status Authorize(const grpc::CallbackServerContext& context) const;
  // A Generate client went away (or its deadline passed): cancel its job.
  void CancelForClient(const std::shared_ptr<scheduler::Job>& job,
                       std::optional<absl::Time> deadline);
  absl::StatusOr<std::shared_ptr<scheduler::Job>> FindJob(
      const std::string& job_id) const;
  // Admit without the on_rejected report.
  absl::StatusOr<std::shared_ptr<scheduler::Job>> AdmitUnreported(
      const dserve::v1::GenerateRequest& request,
      std::optional<absl::Time> deadline,
      const std::function<void(const std::shared_ptr<scheduler::Job>&)>&
          on_created,
      const std::string& principal);
  // on_rejected, when set.
  void ReportRejected(const absl::Status& status) const;
  // A JobEventWriter for `job` with this service's stream policy, or a
  // failed stream (RESOURCE_EXHAUSTED) when the job has
  // max_streams_per_job streams already. `creator`: the Generate that made
  // the job (never refused; its disconnect cancels the job via
  // `on_client_cancel`).
  grpc::ServerWriteReactor<dserve::v1::GenerateEvent>* NewStream(
      grpc::CallbackServerContext* context,
      const std::shared_ptr<scheduler::Job>& job, JobEventWriter::Mode mode,
      bool creator, std::function<void()> on_client_cancel);

  const DiffusionServiceOptions options_;
  scheduler::Scheduler* const scheduler_;
  scheduler::JobTable* const jobs_;
  const RequestValidator* const validator_;
  const scheduler::Clock* const clock_;
  const BearerTokenAuth auth_;

  std::atomic<bool> draining_{false};
  std::atomic<int> open_streams_{0};
  // Ends stalled streams; outlives them (gRPC is shut down first).
  StreamWatchdog watchdog_;
  // Makes "look up client_request_id, else create the job" atomic.
  absl::Mutex admit_mu_;
  int64_t next_sequence_ ABSL_GUARDED_BY(admit_mu_) = 1;
  JobIdGenerator job_ids_;
};

}  // namespace dserve::server

#endif  // DSERVE_SERVER_DIFFUSION_SERVICE_H_
