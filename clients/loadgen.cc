// loadgen: N concurrent clients send Generate requests to a dserve server
// for a while, then print throughput, latency percentiles of the successful
// requests and the count of each status code.
//
//   loadgen --server=127.0.0.1:50051 --concurrency=8 --duration_s=30
//           [--mix=64x64:4,32x32:2] [--auth_token=...] [--tls_ca=ca.pem]
//
// Each client runs one request at a time, back to back, cycling through the
// mix (empty --mix = the server's defaults for its default model). Requests
// start only within --duration_s; the wall time includes the last ones
// finishing. Seeds vary per request.

#include <atomic>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "clients/load_stats.h"
#include "common/program_flags.h"
#include "grpcpp/grpcpp.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "Server address.");
ABSL_FLAG(int, concurrency, 1, "Concurrent clients, 1..4096.");
ABSL_FLAG(int, duration_s, 10, "Seconds during which requests start.");
ABSL_FLAG(std::string, mix, "",
          "Comma-separated WIDTHxHEIGHT:STEPS request shapes, cycled; empty "
          "= the server's defaults.");
ABSL_FLAG(std::string, prompt, "a red circle on a blue square",
          "Prompt of every request.");
ABSL_FLAG(bool, unique_prompts, false,
          "Append \" #NNNNNN\" (the request's number, 6 digits) to --prompt, "
          "so no two requests share a prompt and the replicas' prompt-"
          "embedding cache never hits; compare with the same fixed suffix "
          "in --prompt to measure the cache.");
ABSL_FLAG(int, timeout_s, 300, "Deadline of each request.");
ABSL_FLAG(std::string, auth_token, "", "Bearer token (--auth_token_file).");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle to verify the server's certificate; enables TLS.");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (mutual TLS).");
ABSL_FLAG(std::string, tls_key, "", "PEM client key (mutual TLS).");

namespace dserve::clients {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::shared_ptr<grpc::Channel> MakeChannel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  if (absl::GetFlag(FLAGS_tls_ca).empty()) {
    return grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                     grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadAll(absl::GetFlag(FLAGS_tls_ca));
  if (!absl::GetFlag(FLAGS_tls_cert).empty()) {
    ssl.pem_cert_chain = ReadAll(absl::GetFlag(FLAGS_tls_cert));
    ssl.pem_private_key = ReadAll(absl::GetFlag(FLAGS_tls_key));
  }
  return grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                   grpc::SslCredentials(ssl), args);
}

int Run() {
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  if (concurrency < 1 || concurrency > 4096) {
    std::cerr << "--concurrency=" << concurrency
              << " is out of range (allowed: 1..4096)\n";
    return 2;
  }
  std::vector<dserve::v1::GenerateRequest> mix(1);
  if (!absl::GetFlag(FLAGS_mix).empty()) {
    absl::StatusOr<std::vector<dserve::v1::GenerateRequest>> parsed =
        ParseMix(absl::GetFlag(FLAGS_mix));
    if (!parsed.ok()) {
      std::cerr << parsed.status().message() << "\n";
      return 2;
    }
    mix = *std::move(parsed);
  }
  for (auto& request : mix) request.set_prompt(absl::GetFlag(FLAGS_prompt));

  std::shared_ptr<grpc::Channel> channel = MakeChannel();
  const absl::Time start = absl::Now();
  const absl::Time stop_starting =
      start + absl::Seconds(absl::GetFlag(FLAGS_duration_s));
  const absl::Duration timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout_s));
  const std::string token = absl::GetFlag(FLAGS_auth_token);
  const bool unique_prompts = absl::GetFlag(FLAGS_unique_prompts);

  absl::Mutex mu;
  std::vector<LoadSample> samples;
  std::atomic<uint64_t> next_request{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < concurrency; ++c) {
    clients.emplace_back([&] {
      auto stub = dserve::v1::DiffusionService::NewStub(channel);
      while (absl::Now() < stop_starting) {
        const uint64_t n = next_request.fetch_add(1);
        dserve::v1::GenerateRequest request = mix[n % mix.size()];
        request.set_seed(1000 + n);
        if (unique_prompts) {
          request.set_prompt(absl::StrCat(request.prompt(), " #",
                                          absl::Dec(n % 1000000, absl::kZeroPad6)));
        }
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
        if (!token.empty()) {
          context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
        }
        const absl::Time sent = absl::Now();
        auto reader = stub->Generate(&context, request);
        dserve::v1::GenerateEvent event;
        while (reader->Read(&event)) {
        }
        const grpc::Status status = reader->Finish();
        const LoadSample sample{absl::Now() - sent,
                                static_cast<int>(status.error_code())};
        {
          absl::MutexLock lock(&mu);
          samples.push_back(sample);
        }
        // A refused request returns at once; back off briefly so a full
        // queue is not hammered in a tight loop.
        if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
            status.error_code() == grpc::StatusCode::UNAVAILABLE) {
          absl::SleepFor(absl::Milliseconds(50));
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  const absl::Duration wall = absl::Now() - start;
  absl::MutexLock lock(&mu);
  std::cout << FormatSummary(Summarize(samples, wall), concurrency, wall);
  return 0;
}

}  // namespace
}  // namespace dserve::clients

int main(int argc, char** argv) {
  dserve::common::ParseProgramFlags(
      argc, argv, "loadgen",
      "loadgen --server=HOST:PORT --concurrency=N --duration_s=S "
      "[--mix=WxH:STEPS,...]: load-tests a dserve server");
  return dserve::clients::Run();
}
