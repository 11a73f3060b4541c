#ifndef DSERVE_CLIENTS_COMMANDS_H_
#define DSERVE_CLIENTS_COMMANDS_H_

// The dserve CLI's subcommands, one function each, written against the
// generated DiffusionService stub interface so they run unchanged against a
// real channel or an in-process server.
//
// Every function returns the process exit code (see cli_status.h): 0 on
// success, 10 + the gRPC code when the call or the job failed, 3 for a local
// failure such as an unwritable --out file. Results that scripts read (job id,
// seed, timings, files written) go to `out`, one "key: value" per line;
// the progress bar and error lines go to `err`.
//
// Ownership: borrows the stub and the streams for the duration of a call.
// Thread-safety: each call is independent; the stub may be shared.
// Blocking: every function blocks until its RPC (or stream) ends or the
// deadline in CommandEnv passes.

#include <optional>
#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"

namespace dserve::clients {

struct CommandEnv {
  std::ostream* out;
  std::ostream* err;
  // Deadline of each RPC measured from its start; zero or negative = none.
  absl::Duration timeout = absl::ZeroDuration();
  // Draw a progress bar on `err` while a job runs.
  bool show_progress = true;
  // Sent as "authorization: Bearer <auth_token>" on every RPC when set
  // (servers started with --auth_token_file).
  std::string auth_token;
};

using Stub = dserve::v1::DiffusionService::StubInterface;

// `generate`: streams Generate, draws progress, writes the media to
// `out_path` (FramePath naming for several frames), prints seed and timings.
int RunGenerate(Stub& stub, const dserve::v1::GenerateRequest& request,
                const std::string& out_path, const CommandEnv& env);

// `submit`: SubmitJob; prints "job_id: <id>".
int RunSubmit(Stub& stub, const dserve::v1::GenerateRequest& request,
              const CommandEnv& env);

// `status JOB`: GetJob; prints the state, progress and, for a finished job,
// its status or seed and timings. Exit code reflects the RPC, not the job.
int RunStatus(Stub& stub, const std::string& job_id, const CommandEnv& env);

// `watch JOB`: WatchJob until the job ends. With a non-empty `out_path`,
// writes the result media. The exit code reflects how the job ended (a
// cancelled job gives CANCELLED's code).
int RunWatch(Stub& stub, const std::string& job_id,
             const std::string& out_path, const CommandEnv& env);

// `cancel JOB`: CancelJob; prints the job's state afterwards.
int RunCancel(Stub& stub, const std::string& job_id, const CommandEnv& env);

// `jobs [--state S]`: ListJobs over every page; one line per job.
int RunListJobs(Stub& stub, std::optional<dserve::v1::JobState> state,
                const CommandEnv& env);

// `info`: GetServerInfo.
int RunInfo(Stub& stub, const CommandEnv& env);

// `models`: ListModels.
int RunModels(Stub& stub, const CommandEnv& env);

}  // namespace dserve::clients

#endif  // DSERVE_CLIENTS_COMMANDS_H_
