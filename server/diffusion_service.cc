#include "server/diffusion_service.h"

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/generation_limits.h"
#include "common/rpc_status.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "common/status_macros.h"
#include "server/job_event_writer.h"
#include "spdlog/spdlog.h"

namespace dserve::server {
namespace {

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(common::ToGrpcStatus(status));
  return reactor;
}

// Same fields and values (unknown fields included), compared by their
// deterministic encoding.
bool SameRequest(const dserve::v1::GenerateRequest& a,
                 const dserve::v1::GenerateRequest& b) {
  std::string a_bytes, b_bytes;
  {
    google::protobuf::io::StringOutputStream out(&a_bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    a.SerializeToCodedStream(&coded);
  }
  {
    google::protobuf::io::StringOutputStream out(&b_bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    b.SerializeToCodedStream(&coded);
  }
  return a_bytes == b_bytes;
}

}  // namespace

DiffusionService::DiffusionService(DiffusionServiceOptions options,
                                   scheduler::Scheduler* scheduler,
                                   scheduler::JobTable* jobs,
                                   const RequestValidator* validator,
                                   const scheduler::Clock* clock)
    : options_(std::move(options)),
      scheduler_(scheduler),
      jobs_(jobs),
      validator_(validator),
      clock_(clock),
      auth_(options_.auth_token),
      watchdog_(StreamWatchdog::Options{options_.stream_write_timeout},
                clock),
      job_ids_(options_.instance_id) {}

grpc::ServerWriteReactor<dserve::v1::GenerateEvent>* DiffusionService::NewStream(
    grpc::CallbackServerContext* context,
    const std::shared_ptr<scheduler::Job>& job, JobEventWriter::Mode mode,
    bool creator, std::function<void()> on_client_cancel) {
  if (!job->AddStream(creator ? 0 : options_.max_streams_per_job)) {
    return JobEventWriter::Failed(absl::ResourceExhaustedError(absl::StrCat(
        "job ", job->id(), " already has ", options_.max_streams_per_job,
        " open streams (--max_watchers_per_job=",
        options_.max_streams_per_job,
        "); close one, or poll GetJob instead of watching")));
  }
  JobEventWriter::Options writer;
  writer.on_client_cancel = std::move(on_client_cancel);
  writer.open_streams = &open_streams_;
  writer.context = context;
  writer.watchdog = &watchdog_;
  writer.clock = clock_;
  writer.counted_on_job = true;
  return new JobEventWriter(job, mode, std::move(writer));
}

void DiffusionService::StartDraining() { draining_.store(true); }

std::optional<absl::Time> DiffusionService::ClientDeadline(
    const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return std::nullopt;
  }
  return absl::FromChrono(deadline);
}

absl::StatusOr<std::shared_ptr<scheduler::Job>> DiffusionService::Admit(
    const dserve::v1::GenerateRequest& request,
    std::optional<absl::Time> deadline,
    const std::function<void(const std::shared_ptr<scheduler::Job>&)>&
        on_created,
    const std::string& principal) {
  absl::StatusOr<std::shared_ptr<scheduler::Job>> job =
      AdmitUnreported(request, deadline, on_created, principal);
  if (!job.ok()) ReportRejected(job.status());
  return job;
}

void DiffusionService::ReportRejected(const absl::Status& status) const {
  if (options_.on_rejected) options_.on_rejected(status);
}

absl::StatusOr<std::shared_ptr<scheduler::Job>>
DiffusionService::AdmitUnreported(
    const dserve::v1::GenerateRequest& request,
    std::optional<absl::Time> deadline,
    const std::function<void(const std::shared_ptr<scheduler::Job>&)>&
        on_created,
    const std::string& principal) {
  if (draining_.load()) {
    return absl::UnavailableError(
        "server is draining (it received a shutdown signal) and accepts no "
        "new jobs; retry against another instance");
  }
  const std::vector<dserve::v1::ModelInfo> models = scheduler_->Models();
  if (models.empty()) {
    if (scheduler_->NoReplicaLeft()) {
      return absl::UnavailableError(
          "no healthy replica: every replica failed to start; the server log "
          "says why");
    }
    return absl::UnavailableError(
        "no replica is ready yet (worker processes are still starting); "
        "retry shortly or wait for the health check to report SERVING");
  }
  // Unknown fields are dropped at admission: a job stores, compares and
  // echoes only the fields this server understands (a 3 MiB unknown field
  // must not live on in the job table or GetJob replies).
  dserve::v1::GenerateRequest known = request;
  known.DiscardUnknownFields();
  ASSIGN_OR_RETURN(dserve::v1::GenerateRequest effective,
                   validator_->Resolve(known, models));
  effective.DiscardUnknownFields();

  absl::MutexLock lock(&admit_mu_);
  if (!request.client_request_id().empty()) {
    if (std::shared_ptr<scheduler::Job> existing = jobs_->FindByClientRequestId(
            principal, request.client_request_id())) {
      // The key is bound to its request: a different request under the same
      // key is a client bug, not a retry.
      if (!SameRequest(existing->request(), known)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "client_request_id: \"",
            common::EchoValue(request.client_request_id()),
            "\" is already used by job ", existing->id(),
            " for a different request; a retry must send the same request, "
            "a new request needs a new client_request_id"));
      }
      spdlog::info("[server] [job {}] client_request_id \"{}\" seen before; "
                   "returning the existing job",
                   existing->id(),
                   common::EchoValue(request.client_request_id()));
      return existing;
    }
  }
  scheduler::JobSpec spec;
  spec.sequence = next_sequence_++;
  spec.id = job_ids_.Next();
  spec.request = std::move(known);
  spec.effective_request = std::move(effective);
  spec.deadline = deadline;
  if (!spec.deadline.has_value() &&
      options_.default_job_deadline != absl::InfiniteDuration()) {
    spec.deadline = clock_->Now() + options_.default_job_deadline;
  }
  spec.create_time = clock_->Now();
  spec.principal = principal;
  auto job = std::make_shared<scheduler::Job>(std::move(spec));
  // Logged before queueing: the scheduler may start the job at once.
  spdlog::info("[server] [job {}] accepted: model {}, {}x{}x{}, {} steps, "
               "seed {}",
               job->id(), job->effective_request().model(),
               job->effective_request().width(),
               job->effective_request().height(),
               job->effective_request().num_frames(),
               job->effective_request().num_inference_steps(),
               job->effective_request().seed());
  if (on_created) on_created(job);
  // In the table before it is queued, so the job_id of its Queued event
  // already answers GetJob.
  jobs_->InsertOrGet(job);
  if (absl::Status s = scheduler_->Submit(job); !s.ok()) {
    spdlog::info("[server] [job {}] not admitted: {}", job->id(), s.ToString());
    // Never admitted: forget it, so a retry with the same client_request_id
    // is a new attempt rather than this failure.
    jobs_->Erase(job->id());
    job->Finish(s, clock_->Now());
    return s;
  }
  if (options_.on_admitted) options_.on_admitted(job);
  return job;
}

absl::StatusOr<std::shared_ptr<scheduler::Job>> DiffusionService::FindJob(
    const std::string& job_id) const {
  if (job_id.empty()) {
    return absl::InvalidArgumentError(
        "job_id: must not be empty (use the job_id from SubmitJob or a "
        "Queued event)");
  }
  absl::StatusOr<std::shared_ptr<scheduler::Job>> job = jobs_->Find(job_id);
  const std::string owner = JobIdInstance(job_id);
  if (job.status().code() == absl::StatusCode::kNotFound && !owner.empty() &&
      owner != job_ids_.instance()) {
    // Behind a load balancer: say why, so the client does not think the
    // job was lost.
    return absl::NotFoundError(absl::StrCat(
        job.status().message(), ": it was created by server instance ", owner,
        " and this is instance ", job_ids_.instance(),
        "; jobs live on the server that admitted them (follow them with "
        "WatchJob/Generate on the same connection, or use session affinity)"));
  }
  return job;
}

grpc::ServerWriteReactor<dserve::v1::GenerateEvent>* DiffusionService::Generate(
    grpc::CallbackServerContext* context,
    const dserve::v1::GenerateRequest* request) {
  if (absl::Status auth = Authorize(*context); !auth.ok()) {
    ReportRejected(auth);
    return JobEventWriter::Failed(auth);
  }
  const std::optional<absl::Time> deadline = ClientDeadline(*context);
  const std::string principal = CallerPrincipal(context->client_metadata());
  grpc::ServerWriteReactor<dserve::v1::GenerateEvent>* writer = nullptr;
  auto attach = [this, context, deadline, &writer](
                    const std::shared_ptr<scheduler::Job>& job) {
    writer = NewStream(context, job, JobEventWriter::Mode::kGenerate,
                       /*creator=*/true, [this, job, deadline] {
                         CancelForClient(job, deadline);
                       });
  };
  absl::StatusOr<std::shared_ptr<scheduler::Job>> job =
      Admit(*request, deadline, attach, principal);
  // A writer attached to a job that then failed to queue ends with the
  // job's status.
  if (writer != nullptr) return writer;
  if (!job.ok()) return JobEventWriter::Failed(job.status());
  // The same client_request_id as an earlier job: follow that one, as a
  // watcher. This stream does not own the job, so its disconnect or
  // deadline does not cancel it (only the stream that created it does).
  return NewStream(context, *job, JobEventWriter::Mode::kGenerate,
                   /*creator=*/false, nullptr);
}

absl::Status DiffusionService::Authorize(
    const grpc::CallbackServerContext& context) const {
  return auth_.Check(context.client_metadata());
}

void DiffusionService::CancelForClient(
    const std::shared_ptr<scheduler::Job>& job,
    std::optional<absl::Time> deadline) {
  // gRPC cancels the call both when the client goes away and when its
  // deadline passes; the job's status says which. gRPC's deadline timer
  // runs on its own clock and was seen to fire a little before Now()
  // reached the deadline, hence the tolerance (a client that cancels 100 ms
  // before its own deadline is told DEADLINE_EXCEEDED, which is harmless).
  const bool expired =
      deadline.has_value() &&
      clock_->Now() >= *deadline - absl::Milliseconds(100);
  absl::Status reason =
      expired ? absl::DeadlineExceededError(absl::StrCat(
                    "job ", job->id(), " reached the client's deadline"))
              : absl::CancelledError(absl::StrCat(
                    "job ", job->id(),
                    " cancelled: the client cancelled or disconnected"));
  spdlog::info("[server] [job {}] {}", job->id(),
               std::string(reason.message()));
  scheduler_->Cancel(job, std::move(reason));
}

grpc::ServerUnaryReactor* DiffusionService::SubmitJob(
    grpc::CallbackServerContext* context,
    const dserve::v1::SubmitJobRequest* request, dserve::v1::Job* response) {
  if (absl::Status auth = Authorize(*context); !auth.ok()) {
    ReportRejected(auth);
    return FinishUnary(context, auth);
  }
  // A SubmitJob deadline bounds only this call, not the job (which is
  // meant to outlive the call): the job gets --default_job_deadline_s.
  absl::StatusOr<std::shared_ptr<scheduler::Job>> job =
      Admit(request->request(), std::nullopt, nullptr,
            CallerPrincipal(context->client_metadata()));
  if (!job.ok()) return FinishUnary(context, job.status());
  *response = JobReply(**job);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* DiffusionService::GetJob(
    grpc::CallbackServerContext* context,
    const dserve::v1::GetJobRequest* request, dserve::v1::Job* response) {
  if (absl::Status auth = Authorize(*context); !auth.ok()) {
    return FinishUnary(context, auth);
  }
  absl::StatusOr<std::shared_ptr<scheduler::Job>> job =
      FindJob(request->job_id());
  if (!job.ok()) return FinishUnary(context, job.status());
  // A unary reply cannot be chunked: a result over 1 MiB comes without its
  // media bytes (Media.chunked_size says how many); WatchJob streams them.
  // Only what the reply carries is copied out of the shared result.
  *response = JobReply(**job);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerWriteReactor<dserve::v1::GenerateEvent>* DiffusionService::WatchJob(
    grpc::CallbackServerContext* context,
    const dserve::v1::WatchJobRequest* request) {
  if (absl::Status auth = Authorize(*context); !auth.ok()) {
    return JobEventWriter::Failed(auth);
  }
  absl::StatusOr<std::shared_ptr<scheduler::Job>> job =
      FindJob(request->job_id());
  if (!job.ok()) return JobEventWriter::Failed(job.status());
  return NewStream(context, *job, JobEventWriter::Mode::kWatch,
                   /*creator=*/false, nullptr);
}

grpc::ServerUnaryReactor* DiffusionService::CancelJob(
    grpc::CallbackServerContext* context,
    const dserve::v1::CancelJobRequest* request, dserve::v1::Job* response) {
  if (absl::Status auth = Authorize(*context); !auth.ok()) {
    return FinishUnary(context, auth);
  }
  absl::StatusOr<std::shared_ptr<scheduler::Job>> job =
      FindJob(request->job_id());
  if (!job.ok()) return FinishUnary(context, job.status());
  if (!(*job)->is_terminal()) {
    spdlog::info("[server] [job {}] CancelJob", (*job)->id());
    scheduler_->Cancel(*job, absl::CancelledError(absl::StrCat(
                                 "job ", (*job)->id(), " cancelled by CancelJob")));
  }
  *response = JobReply(**job);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* DiffusionService::ListJobs(
    grpc::CallbackServerContext* context,
    const dserve::v1::ListJobsRequest* request,
    dserve::v1::ListJobsResponse* response) {
  if (absl::Status auth = Authorize(*context); !auth.ok()) {
    return FinishUnary(context, auth);
  }
  // JobState has 7 values: more entries than this are a client bug (and
  // only cost time), so they are refused before any work.
  constexpr int kMaxStates = 64;
  if (request->states_size() > kMaxStates) {
    return FinishUnary(context, absl::InvalidArgumentError(absl::StrCat(
                                    "states: ", request->states_size(),
                                    " entries is too many (allowed: at most ",
                                    kMaxStates, "; name each state once)")));
  }
  std::vector<dserve::v1::JobState> states;
  for (int state : request->states()) {
    if (!dserve::v1::JobState_IsValid(state)) {
      return FinishUnary(context, absl::InvalidArgumentError(absl::StrCat(
                                      "states: ", state,
                                      " is not a JobState (allowed: 0..6)")));
    }
    states.push_back(static_cast<dserve::v1::JobState>(state));
  }
  absl::StatusOr<scheduler::JobPage> page =
      jobs_->List(states, request->page_size(), request->page_token());
  if (!page.ok()) return FinishUnary(context, page.status());
  for (const auto& job : page->jobs) {
    *response->add_jobs() = job->ToProto(/*include_result=*/false);
  }
  response->set_next_page_token(page->next_page_token);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* DiffusionService::ListModels(
    grpc::CallbackServerContext* context,
    const dserve::v1::ListModelsRequest* /*request*/,
    dserve::v1::ListModelsResponse* response) {
  if (absl::Status auth = Authorize(*context); !auth.ok()) {
    return FinishUnary(context, auth);
  }
  const std::vector<dserve::v1::ModelInfo> models = scheduler_->Models();
  if (models.empty()) {
    return FinishUnary(context,
                       absl::UnavailableError(
                           "no replica is ready yet, so the model list is not "
                           "known; retry shortly"));
  }
  for (const auto& model : models) *response->add_models() = model;
  return FinishUnary(context, absl::OkStatus());
}

dserve::v1::ReplicaInfo PublicReplicaInfo(dserve::v1::ReplicaInfo info,
                                          bool expose_internals) {
  if (!expose_internals) {
    info.clear_leader_address();
    info.clear_pids();
  }
  return info;
}

grpc::ServerUnaryReactor* DiffusionService::GetServerInfo(
    grpc::CallbackServerContext* context,
    const dserve::v1::GetServerInfoRequest* /*request*/,
    dserve::v1::ServerInfo* response) {
  if (absl::Status auth = Authorize(*context); !auth.ok()) {
    return FinishUnary(context, auth);
  }
  response->set_version(options_.version);
  *response->mutable_mesh() = options_.mesh;
  for (auto& replica : scheduler_->ReplicaInfos()) {
    *response->add_replicas() =
        PublicReplicaInfo(std::move(replica), options_.expose_internals);
  }
  response->set_queue_depth(scheduler_->queue_depth());
  response->set_queue_capacity(scheduler_->queue_capacity());
  const std::vector<dserve::v1::ModelInfo> models = scheduler_->Models();
  if (const dserve::v1::ModelInfo* model = FindModel(models, "")) {
    response->set_default_model(model->name());
  }
  response->set_draining(draining_.load());
  return FinishUnary(context, absl::OkStatus());
}

}  // namespace dserve::server
