#include "clients/commands.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>
#include <grpcpp/support/sync_stream.h>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "clients/cli_status.h"
#include "clients/media_output.h"
#include "clients/progress_bar.h"
#include "clients/request_options.h"

namespace dserve::clients {
namespace {

using dserve::v1::GenerateEvent;

// Every RPC's context: the deadline and the bearer token.
void PrepareContext(const CommandEnv& env, grpc::ClientContext* context) {
  if (env.timeout > absl::ZeroDuration()) {
    context->set_deadline(std::chrono::system_clock::now() +
                          absl::ToChronoMilliseconds(env.timeout));
  }
  if (!env.auth_token.empty()) {
    context->AddMetadata("authorization", "Bearer " + env.auth_token);
  }
}

int FailRpc(const grpc::Status& status, const CommandEnv& env) {
  *env.err << DescribeStatus(status) << "\n";
  return ExitCodeForStatusCode(status.error_code());
}

void PrintResult(const dserve::v1::Result& result, const CommandEnv& env) {
  *env.out << "seed: " << result.seed() << "\n";
  *env.out << "timings: " << FormatTimings(result.timings()) << "\n";
  for (const std::string& warning : result.warnings()) {
    *env.err << "warning: " << warning << "\n";
  }
}

// Writes the result's media when the user asked for a file; prints the
// paths. Returns the exit code.
int SaveResult(const dserve::v1::Result& result, const std::string& out_path,
               const CommandEnv& env) {
  if (out_path.empty()) return kExitOk;
  auto written = WriteResultMedia(result, out_path);
  if (!written.ok()) {
    *env.err << "error: " << written.status().message() << "\n";
    return kExitLocalFailure;
  }
  for (const std::string& path : *written) *env.out << "wrote: " << path << "\n";
  for (const dserve::v1::Media& media : result.media()) {
    if (media.mime_type() == "video/mp4") {
      *env.out << "video: " << media.num_frames() << " frames at "
               << media.fps() << " fps, " << media.width() << "x"
               << media.height() << ", H.264 in MP4\n";
    }
  }
  return kExitOk;
}

// The bar counts denoising steps only. ENCODE and DECODE count other units
// (proto Progress), so drawing them as steps would move the bar backwards:
// they replace it with a line saying what the replica is doing.
void DrawProgress(const dserve::v1::Progress& progress, ProgressBar& bar) {
  switch (progress.stage()) {
    case dserve::v1::PROGRESS_STAGE_ENCODE:
      bar.SetMessage("encoding the prompt");
      break;
    case dserve::v1::PROGRESS_STAGE_DECODE:
      bar.SetMessage("decoding " + std::to_string(progress.step()) + "/" +
                     std::to_string(progress.total()));
      break;
    default:  // DENOISE, or UNSPECIFIED from an older server.
      bar.Update(progress.step(), progress.total(), progress.elapsed_ms());
      break;
  }
}

// Reads a Generate or WatchJob stream to its end: draws progress, prints the
// job id, replica, seed and timings, and saves the media. Returns the exit
// code, taking the job's outcome from a JobEnded event (WatchJob) or from the
// stream's status (Generate).
int ConsumeEvents(grpc::ClientReaderInterface<GenerateEvent>* reader,
                  const std::string& out_path, const CommandEnv& env) {
  std::optional<ProgressBar> bar;
  if (env.show_progress) bar.emplace(env.err);
  std::string job_id;
  std::optional<dserve::v1::Result> result;
  std::optional<dserve::v1::JobEnded> ended;
  MediaAssembler assembler;
  GenerateEvent event;
  while (reader->Read(&event)) {
    if (job_id.empty() && !event.job_id().empty()) {
      job_id = event.job_id();
      if (bar) bar->Finish();
      *env.out << "job_id: " << job_id << "\n";
      env.out->flush();
    }
    switch (event.event_case()) {
      case GenerateEvent::kQueued:
        if (bar) {
          bar->SetMessage("queued at position " +
                          std::to_string(event.queued().position()));
        }
        break;
      case GenerateEvent::kStarted:
        if (bar) bar->Finish();
        *env.out << "replica: " << event.started().replica() << "\n";
        env.out->flush();
        break;
      case GenerateEvent::kProgress:
        if (bar) DrawProgress(event.progress(), *bar);
        break;
      case GenerateEvent::kResult:
        result = event.result();
        break;
      case GenerateEvent::kEnded:
        ended = event.ended();
        break;
      case GenerateEvent::kMediaChunk:
        if (absl::Status s = assembler.Add(event.media_chunk()); !s.ok()) {
          if (bar) bar->Finish();
          *env.err << "error: " << s.message() << "\n";
          return kExitLocalFailure;
        }
        break;
      case GenerateEvent::EVENT_NOT_SET:
        break;
    }
  }
  if (bar) bar->Finish();
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return FailRpc(status, env);
  if (ended.has_value()) {
    *env.out << "state: " << JobStateName(ended->state()) << "\n";
    if (ended->status_code() != 0) {
      *env.err << DescribeStatus(ended->status_code(),
                                 ended->status_message())
               << "\n";
      return ExitCodeForStatusCode(ended->status_code());
    }
    if (!result.has_value()) return kExitOk;
  }
  if (!result.has_value()) {
    *env.err << "error: the stream ended OK without a result (server bug)\n";
    return kExitLocalFailure;
  }
  if (absl::Status s = assembler.Complete(&*result); !s.ok()) {
    *env.err << "error: " << s.message() << "\n";
    return kExitLocalFailure;
  }
  PrintResult(*result, env);
  return SaveResult(*result, out_path, env);
}

void PrintJob(const dserve::v1::Job& job, const CommandEnv& env) {
  *env.out << "job_id: " << job.job_id() << "\n";
  *env.out << "state: " << JobStateName(job.state()) << "\n";
  *env.out << "replica: " << job.replica() << "\n";
  *env.out << "step: " << job.step() << "/" << job.total_steps() << "\n";
  if (job.status_code() != 0) {
    *env.out << "status: " << StatusCodeName(job.status_code()) << ": "
             << job.status_message() << "\n";
  }
  if (job.state() == dserve::v1::JOB_STATE_SUCCEEDED) {
    PrintResult(job.result(), env);
  }
}

}  // namespace

int RunGenerate(Stub& stub, const dserve::v1::GenerateRequest& request,
                const std::string& out_path, const CommandEnv& env) {
  grpc::ClientContext context;
  PrepareContext(env, &context);
  std::unique_ptr<grpc::ClientReaderInterface<GenerateEvent>> reader =
      stub.Generate(&context, request);
  return ConsumeEvents(reader.get(), out_path, env);
}

int RunSubmit(Stub& stub, const dserve::v1::GenerateRequest& request,
              const CommandEnv& env) {
  grpc::ClientContext context;
  PrepareContext(env, &context);
  dserve::v1::SubmitJobRequest submit;
  *submit.mutable_request() = request;
  dserve::v1::Job job;
  const grpc::Status status = stub.SubmitJob(&context, submit, &job);
  if (!status.ok()) return FailRpc(status, env);
  *env.out << "job_id: " << job.job_id() << "\n";
  return kExitOk;
}

int RunStatus(Stub& stub, const std::string& job_id, const CommandEnv& env) {
  grpc::ClientContext context;
  PrepareContext(env, &context);
  dserve::v1::GetJobRequest get;
  get.set_job_id(job_id);
  dserve::v1::Job job;
  const grpc::Status status = stub.GetJob(&context, get, &job);
  if (!status.ok()) return FailRpc(status, env);
  PrintJob(job, env);
  return kExitOk;
}

int RunWatch(Stub& stub, const std::string& job_id,
             const std::string& out_path, const CommandEnv& env) {
  grpc::ClientContext context;
  PrepareContext(env, &context);
  dserve::v1::WatchJobRequest watch;
  watch.set_job_id(job_id);
  std::unique_ptr<grpc::ClientReaderInterface<GenerateEvent>> reader =
      stub.WatchJob(&context, watch);
  return ConsumeEvents(reader.get(), out_path, env);
}

int RunCancel(Stub& stub, const std::string& job_id, const CommandEnv& env) {
  grpc::ClientContext context;
  PrepareContext(env, &context);
  dserve::v1::CancelJobRequest cancel;
  cancel.set_job_id(job_id);
  dserve::v1::Job job;
  const grpc::Status status = stub.CancelJob(&context, cancel, &job);
  if (!status.ok()) return FailRpc(status, env);
  *env.out << "job_id: " << job.job_id() << "\n";
  *env.out << "state: " << JobStateName(job.state()) << "\n";
  return kExitOk;
}

int RunListJobs(Stub& stub, std::optional<dserve::v1::JobState> state,
                const CommandEnv& env) {
  dserve::v1::ListJobsRequest list;
  if (state.has_value()) list.add_states(*state);
  // A server bug that always returns a token must not loop forever.
  constexpr int kMaxPages = 10000;
  for (int page = 0; page < kMaxPages; ++page) {
    grpc::ClientContext context;
    PrepareContext(env, &context);
    dserve::v1::ListJobsResponse response;
    const grpc::Status status = stub.ListJobs(&context, list, &response);
    if (!status.ok()) return FailRpc(status, env);
    for (const dserve::v1::Job& job : response.jobs()) {
      *env.out << job.job_id() << "  " << JobStateName(job.state())
               << "  step " << job.step() << "/" << job.total_steps()
               << "  replica " << job.replica() << "  \""
               << job.request().prompt() << "\"\n";
    }
    if (response.next_page_token().empty()) return kExitOk;
    list.set_page_token(response.next_page_token());
  }
  *env.err << "error: ListJobs returned more than " << kMaxPages
           << " pages\n";
  return kExitLocalFailure;
}

int RunInfo(Stub& stub, const CommandEnv& env) {
  grpc::ClientContext context;
  PrepareContext(env, &context);
  dserve::v1::ServerInfo info;
  const grpc::Status status =
      stub.GetServerInfo(&context, dserve::v1::GetServerInfoRequest(), &info);
  if (!status.ok()) return FailRpc(status, env);
  *env.out << "version: " << info.version() << "\n";
  *env.out << "default_model: " << info.default_model() << "\n";
  *env.out << "mesh: " << FormatMesh(info.mesh()) << "\n";
  *env.out << "queue: " << info.queue_depth() << "/" << info.queue_capacity()
           << "\n";
  *env.out << "draining: " << (info.draining() ? "yes" : "no") << "\n";
  for (const dserve::v1::ReplicaInfo& replica : info.replicas()) {
    std::vector<std::string> pids;
    for (int32_t pid : replica.pids()) pids.push_back(std::to_string(pid));
    *env.out << "replica " << replica.index() << ": "
             << ReplicaStateName(replica.state())
             << "  world " << replica.world_size() << "  pids "
             << absl::StrJoin(pids, ",") << "  leader "
             << replica.leader_address() << "  jobs "
             << replica.jobs_completed() << "  restarts "
             << replica.restarts();
    if (!replica.current_job_id().empty()) {
      *env.out << "  running " << replica.current_job_id();
    }
    *env.out << "\n";
  }
  return kExitOk;
}

int RunModels(Stub& stub, const CommandEnv& env) {
  grpc::ClientContext context;
  PrepareContext(env, &context);
  dserve::v1::ListModelsResponse response;
  const grpc::Status status = stub.ListModels(
      &context, dserve::v1::ListModelsRequest(), &response);
  if (!status.ok()) return FailRpc(status, env);
  for (const dserve::v1::ModelInfo& model : response.models()) {
    *env.out << model.name() << (model.is_default() ? " (default)" : "")
             << ": " << model.description() << "\n";
    *env.out << "  size " << model.default_width() << "x"
             << model.default_height() << " (max " << model.max_width()
             << "x" << model.max_height() << ", step " << model.size_step()
             << "), frames <= " << model.max_frames() << ", steps "
             << model.default_steps() << ", guidance "
             << model.default_guidance_scale() << ", flow_shift "
             << model.default_flow_shift() << "\n";
    *env.out << "  dit dim " << model.dim() << ", heads "
             << model.num_heads() << ", layers " << model.num_layers()
             << ", prediction " << model.prediction_type() << ", vocabulary "
             << model.vocabulary_size() << " words\n";
    if (model.parameter_count() > 0) {
      // What each rank of a replica holds (its DiT share + the rest), in
      // GiB, or MiB for a small model.
      int64_t largest = 0;
      for (int64_t b : model.weight_bytes_per_rank()) {
        largest = std::max(largest, b);
      }
      const bool gib = largest >= (int64_t{1} << 30);
      const double unit = gib ? 1073741824.0 : 1048576.0;
      std::vector<std::string> ranks;
      for (int r = 0; r < model.weight_bytes_per_rank_size(); ++r) {
        std::string line =
            absl::StrFormat("%.2f %s", model.weight_bytes_per_rank(r) / unit,
                            gib ? "GiB" : "MiB");
        if (r < model.dit_bytes_per_rank_size()) {
          absl::StrAppendFormat(&line, " (DiT %.2f)",
                                model.dit_bytes_per_rank(r) / unit);
        }
        ranks.push_back(line);
      }
      *env.out << absl::StrFormat("  parameters %.3f B, weights per rank: ",
                                  model.parameter_count() / 1e9)
               << absl::StrJoin(ranks, ", ") << "\n";
    }
  }
  return kExitOk;
}

}  // namespace dserve::clients
