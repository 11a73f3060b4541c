// dserve: command-line client for the dserve.v1.DiffusionService API.
//
//   dserve [--server=HOST:PORT] [--timeout_s=S] <command> [flags] [args]
//
// Commands:
//   generate --prompt TEXT --out FILE [request flags]   run one request
//   submit   --prompt TEXT [request flags]              queue; prints job id
//   status JOB                                          one job's state
//   watch JOB [--out FILE]                              follow a job to its end
//   cancel JOB                                          cancel a job
//   jobs [--state S]                                    list jobs
//   info                                                server, replicas, queue
//   models                                              the models served
//
// Exit codes: 0 ok, 1 usage error, 3 local failure, 10 + the gRPC status
// code otherwise (13 INVALID_ARGUMENT, 15 NOT_FOUND, 18 RESOURCE_EXHAUSTED,
// 24 UNAVAILABLE, ...); the full table is in clients/cli_status.h.

#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include <unistd.h>

#include "clients/channel.h"
#include "clients/cli_status.h"
#include "clients/output_check.h"
#include "clients/commands.h"
#include "clients/request_options.h"
#include "common/program_flags.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"

ABSL_FLAG(std::string, server, "localhost:50051",
          "Address of the dserve server, HOST:PORT.");
ABSL_FLAG(double, timeout_s, 0,
          "Deadline of each call in seconds; 0 = none. A generate that runs "
          "past it ends with DEADLINE_EXCEEDED (exit 14).");
ABSL_FLAG(bool, progress, true,
          "Draw a progress bar on stderr (only when stderr is a terminal).");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle to verify the server's certificate; enables TLS.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate, for servers with --tls_client_ca.");
ABSL_FLAG(std::string, tls_key, "", "PEM key of --tls_cert.");
ABSL_FLAG(std::string, auth_token, "",
          "Bearer token, for servers with --auth_token_file.");

ABSL_FLAG(std::string, prompt, "", "Text to draw (generate, submit).");
ABSL_FLAG(std::string, negative, "", "Negative prompt (generate, submit).");
ABSL_FLAG(std::string, model, "", "Model name; empty = server default.");
ABSL_FLAG(int32_t, width, 0, "Width in pixels; 0 = model default.");
ABSL_FLAG(int32_t, height, 0, "Height in pixels; 0 = model default.");
ABSL_FLAG(int32_t, frames, 0, "Frames; 1 = image; 0 = model default.");
ABSL_FLAG(int32_t, steps, 0, "Denoising steps; 0 = model default.");
ABSL_FLAG(std::optional<float>, guidance, std::nullopt,
          "Classifier-free guidance scale; unset = model default.");
ABSL_FLAG(std::optional<uint64_t>, seed, std::nullopt,
          "Noise seed; unset = the server picks one and prints it.");
ABSL_FLAG(std::optional<float>, flow_shift, std::nullopt,
          "Flow-matching sigma shift; unset = model default.");
ABSL_FLAG(int32_t, priority, 0, "-100 to 100; higher runs first.");
ABSL_FLAG(std::string, request_id, "",
          "Idempotency key for submit: the same id returns the same job.");
ABSL_FLAG(std::string, out, "",
          "Output file (generate, watch). Several frames are written as "
          "FILE_0000.ext, FILE_0001.ext, ...");
ABSL_FLAG(std::string, format, "",
          "Output format: png (one file per frame), mp4 (one H.264 video) or "
          "raw (float32 tensor); empty = mp4 when --out ends in .mp4, else "
          "png.");
ABSL_FLAG(int32_t, fps, 0, "MP4 frames per second; 0 = model default.");
ABSL_FLAG(std::string, cache, "",
          "Step-cache preset: off, slow, medium or fast (more steps reuse "
          "the DiT's cached residual: faster, less faithful); empty = the "
          "server's --step_cache.");
ABSL_FLAG(std::string, state, "",
          "jobs: only jobs in this state (queued, running, succeeded, failed, "
          "cancelled, deadline_exceeded).");

namespace dserve::clients {
namespace {

constexpr char kUsage[] =
    "dserve [--server=HOST:PORT] [--timeout_s=S] <command> [flags] [args]\n"
    "\n"
    "commands:\n"
    "  generate --prompt TEXT --out FILE [--negative TEXT] [--width W]\n"
    "           [--height H] [--frames F] [--steps N] [--guidance G]\n"
    "           [--seed S] [--priority P] [--model M]\n"
    "           [--format png|mp4|raw] [--fps N]   (--out x.mp4 = mp4)\n"
    "           [--cache off|slow|medium|fast]\n"
    "  submit   --prompt TEXT [same request flags]   prints the job id\n"
    "  status JOB | watch JOB [--out FILE] | cancel JOB\n"
    "  jobs [--state S] | info | models\n"
    "\n"
    "exit codes: 0 ok, 1 usage, 3 local failure, 10 + gRPC status code\n"
    "(13 invalid argument, 14 deadline, 15 not found, 18 queue full,\n"
    "24 unavailable, 11 cancelled; table in clients/cli_status.h)";

RequestOptions RequestOptionsFromFlags() {
  RequestOptions options;
  options.model = absl::GetFlag(FLAGS_model);
  options.prompt = absl::GetFlag(FLAGS_prompt);
  options.negative_prompt = absl::GetFlag(FLAGS_negative);
  options.width = absl::GetFlag(FLAGS_width);
  options.height = absl::GetFlag(FLAGS_height);
  options.num_frames = absl::GetFlag(FLAGS_frames);
  options.num_inference_steps = absl::GetFlag(FLAGS_steps);
  options.guidance_scale = absl::GetFlag(FLAGS_guidance);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.flow_shift = absl::GetFlag(FLAGS_flow_shift);
  options.priority = absl::GetFlag(FLAGS_priority);
  options.client_request_id = absl::GetFlag(FLAGS_request_id);
  options.fps = absl::GetFlag(FLAGS_fps);
  // Always an idempotency key, so the retry policy may repeat the call
  // (clients/channel.h).
  if (options.client_request_id.empty()) {
    options.client_request_id = NewClientRequestId();
  }
  return options;
}

// The whole file, or nullopt when it cannot be read.
std::optional<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

int Usage(const std::string& problem) {
  std::cerr << "usage error: " << problem << "\n\n" << kUsage << "\n";
  return kExitUsage;
}

// `args` are the positional arguments after the program name.
int Main(const std::vector<std::string>& args) {
  if (args.empty()) return Usage("missing command");
  const std::string& command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());

  const double timeout_s = absl::GetFlag(FLAGS_timeout_s);
  if (timeout_s < 0) {
    return Usage("--timeout_s " + std::to_string(timeout_s) +
                 " must be >= 0 (0 = no deadline)");
  }
  // A progress bar is for a person watching a terminal; in a log file or a
  // pipe its carriage returns are noise.
  CommandEnv env{&std::cout, &std::cerr, absl::Seconds(timeout_s),
                 absl::GetFlag(FLAGS_progress) && isatty(STDERR_FILENO) == 1};

  auto needs_args = [&](size_t n, const char* what) {
    return rest.size() == n
               ? std::string()
               : command + " takes " + what + ", got " +
                     std::to_string(rest.size()) + " argument(s)";
  };
  std::string problem;
  if (command == "generate" || command == "submit" || command == "info" ||
      command == "models" || command == "jobs") {
    problem = needs_args(0, "no positional arguments");
  } else if (command == "status" || command == "watch" ||
             command == "cancel") {
    problem = needs_args(1, "exactly one JOB id");
  } else {
    return Usage("unknown command \"" + command + "\"");
  }
  if (!problem.empty()) return Usage(problem);
  if (command == "generate" && absl::GetFlag(FLAGS_out).empty()) {
    return Usage("generate needs --out FILE");
  }
  absl::StatusOr<dserve::v1::OutputFormat> format =
      OutputFormatFor(absl::GetFlag(FLAGS_format), absl::GetFlag(FLAGS_out));
  if (!format.ok()) return Usage(std::string(format.status().message()));
  absl::StatusOr<std::optional<dserve::v1::StepCache>> cache =
      StepCacheForPreset(absl::GetFlag(FLAGS_cache));
  if (!cache.ok()) return Usage(std::string(cache.status().message()));
  // Before anything is sent: a result nobody can save is wasted work.
  if ((command == "generate" || command == "watch") &&
      !absl::GetFlag(FLAGS_out).empty()) {
    if (absl::Status s = CheckOutputPath(absl::GetFlag(FLAGS_out)); !s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return kExitLocalFailure;
    }
  }
  std::optional<dserve::v1::JobState> state;
  if (command == "jobs" && !absl::GetFlag(FLAGS_state).empty()) {
    auto parsed = ParseJobState(absl::GetFlag(FLAGS_state));
    if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
    state = *parsed;
  }

  env.auth_token = absl::GetFlag(FLAGS_auth_token);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (!absl::GetFlag(FLAGS_tls_ca).empty()) {
    grpc::SslCredentialsOptions ssl;
    std::optional<std::string> ca = ReadWholeFile(absl::GetFlag(FLAGS_tls_ca));
    if (!ca.has_value()) {
      return Usage("--tls_ca=" + absl::GetFlag(FLAGS_tls_ca) +
                   ": cannot read the file");
    }
    ssl.pem_root_certs = *ca;
    if (!absl::GetFlag(FLAGS_tls_cert).empty()) {
      std::optional<std::string> cert =
          ReadWholeFile(absl::GetFlag(FLAGS_tls_cert));
      std::optional<std::string> key =
          ReadWholeFile(absl::GetFlag(FLAGS_tls_key));
      if (!cert.has_value() || !key.has_value()) {
        return Usage("--tls_cert/--tls_key: cannot read the files");
      }
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  std::shared_ptr<grpc::Channel> channel =
      CreateDserveChannel(absl::GetFlag(FLAGS_server), credentials);
  std::unique_ptr<dserve::v1::DiffusionService::Stub> stub =
      dserve::v1::DiffusionService::NewStub(channel);

  RequestOptions request_options = RequestOptionsFromFlags();
  request_options.output_format = *format;
  request_options.step_cache = *cache;
  if (command == "generate") {
    return RunGenerate(*stub, BuildGenerateRequest(request_options),
                       absl::GetFlag(FLAGS_out), env);
  }
  if (command == "submit") {
    return RunSubmit(*stub, BuildGenerateRequest(request_options), env);
  }
  if (command == "status") return RunStatus(*stub, rest[0], env);
  if (command == "watch") {
    return RunWatch(*stub, rest[0], absl::GetFlag(FLAGS_out), env);
  }
  if (command == "cancel") return RunCancel(*stub, rest[0], env);
  if (command == "jobs") return RunListJobs(*stub, state, env);
  if (command == "info") return RunInfo(*stub, env);
  return RunModels(*stub, env);
}

}  // namespace
}  // namespace dserve::clients

int main(int argc, char** argv) {
  std::vector<char*> positional = dserve::common::ParseProgramFlags(
      argc, argv, "dserve", dserve::clients::kUsage);
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  return dserve::clients::Main(args);
}
