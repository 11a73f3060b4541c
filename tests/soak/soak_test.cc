// Soak and chaos: the real server (2 replicas of the built-in model, real
// worker processes, loopback only) under a mix of clients that misbehave —
// random cancels, clients that disconnect mid-stream, deadlines shorter than
// the job, SubmitJob + WatchJob — plus loadgen's steady Generate traffic,
// while a chaos thread SIGKILLs a random worker rank every few seconds.
//
// It then asserts the server's bookkeeping held:
//  * every job the server accepted (a SubmitJob reply or a stream's first
//    event carried its id) ended exactly once: GetJob shows a terminal state
//    that agrees with what its client saw, each WatchJob stream saw exactly
//    one terminal event, and it is listed by ListJobs exactly once;
//  * nothing was lost or duplicated: every client_request_id the test sent
//    is on at most one job, no job is left QUEUED/RUNNING;
//  * server RSS and open fds are flat: sampled when idle after a warm-up
//    phase (the same chaos, --soak_warmup_fraction of the time) and again
//    when idle at the end, within kRssToleranceBytes / kFdTolerance;
//  * the server still answers and drains (SIGTERM exits 0).
//
// Duration: --soak_seconds (CI: the BUILD's short budget; at most 600).
//   bazel test //tests/soak:soak_test --test_arg=--soak_seconds=600
//     --test_timeout=900 --test_output=streamed
// Figures (jobs, kills, RSS/fd at start and end) are printed as "soak:" lines.

#include <dirent.h>
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/proc_status.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"

ABSL_FLAG(int, soak_seconds, 120,
          "Seconds of chaos load (warm-up included), 10..600.");
ABSL_FLAG(double, soak_warmup_fraction, 0.4,
          "Share of --soak_seconds run before the baseline RSS/fd sample.");
ABSL_FLAG(int, soak_clients, 6, "Concurrent misbehaving client threads.");
ABSL_FLAG(int, soak_kill_every_s, 12,
          "Mean seconds between SIGKILLs of a random worker rank (0 = none).");
ABSL_FLAG(int, soak_loadgen_concurrency, 1,
          "loadgen clients running beside (0 = no loadgen).");

namespace dserve::tests {
namespace {

using dserve::v1::GenerateEvent;
using dserve::v1::GenerateRequest;
using dserve::v1::Job;
using dserve::v1::JobState;

// RSS may grow by the finished jobs the server keeps (small PNG results,
// at most 1000 of them: the warm-up, ~25 requests/s, mostly fills that
// table) and allocator slack; a leak per request or per restarted replica
// would exceed it within minutes.
constexpr int64_t kRssToleranceBytes = 48ll << 20;
// Connections and replica pipes come and go; a leak per request or restart
// would exceed this.
constexpr int kFdTolerance = 8;

struct ProcessSample {
  int64_t rss_bytes = -1;
  int fds = -1;
};

ProcessSample Sample(pid_t pid) {
  ProcessSample s;
  const int64_t rss_kib = common::testing::ProcStatusKib(pid, "VmRSS");
  if (rss_kib >= 0) s.rss_bytes = rss_kib * 1024;
  if (DIR* dir = opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    s.fds = 0;
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++s.fds;
    }
    closedir(dir);
  }
  return s;
}

// The worker processes the server spawned (its children named
// dserve_worker).
std::vector<pid_t> WorkerPids(pid_t server) {
  std::vector<pid_t> pids;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return pids;
  while (dirent* e = readdir(dir)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
    std::string all((std::istreambuf_iterator<char>(stat)),
                    std::istreambuf_iterator<char>());
    // pid (comm) state ppid ...; comm may hold spaces, so split at ')'.
    const size_t open = all.find('('), close = all.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    const std::string comm = all.substr(open + 1, close - open - 1);
    std::istringstream rest(all.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == server && absl::StartsWith(comm, "dserve_worker")) {
      pids.push_back(pid);
    }
  }
  closedir(dir);
  return pids;
}

// What one client request saw.
struct Record {
  std::string client_request_id;
  std::string kind;
  std::string job_id;  // empty: the server never told us (not accepted)
  grpc::StatusCode code = grpc::StatusCode::OK;
  bool got_result = false;
  int terminal_events = -1;  // WatchJob only
  JobState watched_state = dserve::v1::JOB_STATE_UNSPECIFIED;
};

bool IsTerminalEvent(const GenerateEvent& e) {
  return e.has_result() || e.has_ended();
}

std::chrono::system_clock::time_point In(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

class Soak {
 public:
  Soak(ServerProcess* server, dserve::v1::ModelInfo model)
      : server_(server),
        model_(std::move(model)),
        stub_(dserve::v1::DiffusionService::NewStub(server->channel())) {}

  // Runs the client mix (and chaos) for `duration`.
  void Run(absl::Duration duration, int clients, int kill_every_s) {
    const absl::Time end = absl::Now() + duration;
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([this, c, end] { ClientLoop(c, end); });
    }
    if (kill_every_s > 0) {
      threads.emplace_back([this, end, kill_every_s] { ChaosLoop(end, kill_every_s); });
    }
    for (auto& t : threads) t.join();
  }

  std::vector<Record> records() const {
    absl::MutexLock lock(&mu_);
    return records_;
  }
  int kills() const { return kills_.load(); }

 private:
  GenerateRequest NextRequest(std::mt19937& rng, std::string* crid) {
    GenerateRequest request = SmallRequest(
        model_, 32, std::uniform_int_distribution<int>(1, 6)(rng));
    request.set_seed(rng());
    *crid = absl::StrCat("soak-", next_id_.fetch_add(1));
    request.set_client_request_id(*crid);
    return request;
  }

  void Add(Record r) {
    absl::MutexLock lock(&mu_);
    records_.push_back(std::move(r));
  }

  // Generate on `channel`, cancelled after `cancel_after` (if set) or by
  // the deadline; the job id comes from the first event.
  void Stream(const std::shared_ptr<grpc::Channel>& channel, Record& r,
              const GenerateRequest& request, absl::Duration deadline,
              std::optional<absl::Duration> cancel_after) {
    auto stub = dserve::v1::DiffusionService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(In(deadline));
    std::unique_ptr<grpc::ClientReader<GenerateEvent>> reader =
        stub->Generate(&context, request);
    std::thread canceller;
    if (cancel_after.has_value()) {
      canceller = std::thread([&context, d = *cancel_after] {
        absl::SleepFor(d);
        context.TryCancel();
      });
    }
    GenerateEvent event;
    while (reader->Read(&event)) {
      if (r.job_id.empty()) r.job_id = event.job_id();
      if (event.has_result()) r.got_result = true;
    }
    r.code = reader->Finish().error_code();
    if (canceller.joinable()) canceller.join();
  }

  void ClientLoop(int client, absl::Time end) {
    std::mt19937 rng(1000 + client);
    while (absl::Now() < end) {
      Record r;
      const GenerateRequest request = NextRequest(rng, &r.client_request_id);
      const int kind = std::uniform_int_distribution<int>(0, 4)(rng);
      const absl::Duration jitter =
          absl::Milliseconds(std::uniform_int_distribution<int>(0, 600)(rng));
      switch (kind) {
        case 0:
          r.kind = "generate";
          Stream(server_->channel(), r, request, absl::Seconds(120),
                 std::nullopt);
          break;
        case 1:
          r.kind = "short_deadline";
          Stream(server_->channel(), r, request,
                 absl::Milliseconds(50) + jitter, std::nullopt);
          break;
        case 2: {
          // A client that goes away: its own connection, cancelled and
          // closed mid-stream.
          r.kind = "disconnect";
          grpc::ChannelArguments args;
          args.SetInt("dserve.soak.connection", next_id_.fetch_add(1));
          auto channel = grpc::CreateCustomChannel(
              server_->address(), grpc::InsecureChannelCredentials(), args);
          Stream(channel, r, request, absl::Seconds(120), jitter);
          break;
        }
        case 3:
        case 4: {
          r.kind = kind == 3 ? "submit_cancel" : "submit_watch";
          grpc::ClientContext context;
          context.set_deadline(In(absl::Seconds(20)));
          dserve::v1::SubmitJobRequest submit;
          *submit.mutable_request() = request;
          Job job;
          r.code = stub_->SubmitJob(&context, submit, &job).error_code();
          if (r.code != grpc::StatusCode::OK) break;
          r.job_id = job.job_id();
          if (kind == 3) {
            absl::SleepFor(jitter);
            grpc::ClientContext cancel_context;
            cancel_context.set_deadline(In(absl::Seconds(20)));
            dserve::v1::CancelJobRequest cancel;
            cancel.set_job_id(r.job_id);
            Job cancelled;
            stub_->CancelJob(&cancel_context, cancel, &cancelled);
            break;
          }
          grpc::ClientContext watch_context;
          watch_context.set_deadline(In(absl::Seconds(120)));
          dserve::v1::WatchJobRequest watch;
          watch.set_job_id(r.job_id);
          auto reader = stub_->WatchJob(&watch_context, watch);
          GenerateEvent event;
          r.terminal_events = 0;
          while (reader->Read(&event)) {
            if (IsTerminalEvent(event)) {
              ++r.terminal_events;
              r.watched_state = event.has_result()
                                    ? dserve::v1::JOB_STATE_SUCCEEDED
                                    : event.ended().state();
            }
          }
          reader->Finish();
          break;
        }
      }
      Add(std::move(r));
    }
  }

  void ChaosLoop(absl::Time end, int kill_every_s) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> wait_ms(kill_every_s * 500,
                                               kill_every_s * 1500);
    while (true) {
      absl::SleepFor(absl::Milliseconds(wait_ms(rng)));
      if (absl::Now() >= end) return;
      std::vector<pid_t> workers = WorkerPids(server_->pid());
      if (workers.empty()) continue;
      const pid_t victim = workers[rng() % workers.size()];
      if (kill(victim, SIGKILL) == 0) {
        ++kills_;
        std::cerr << "soak: SIGKILL worker pid " << victim << "\n";
      }
    }
  }

  ServerProcess* const server_;
  const dserve::v1::ModelInfo model_;
  std::unique_ptr<dserve::v1::DiffusionService::Stub> stub_;
  std::atomic<int> next_id_{0};
  std::atomic<int> kills_{0};
  mutable absl::Mutex mu_;
  std::vector<Record> records_ ABSL_GUARDED_BY(mu_);
};

// Every job ListJobs shows, all pages.
std::vector<Job> ListAll(dserve::v1::DiffusionService::Stub& stub) {
  std::vector<Job> jobs;
  std::string token;
  for (int page = 0; page < 10000; ++page) {
    grpc::ClientContext context;
    context.set_deadline(In(absl::Seconds(20)));
    dserve::v1::ListJobsRequest request;
    request.set_page_size(1000);
    request.set_page_token(token);
    dserve::v1::ListJobsResponse response;
    const grpc::Status status = stub.ListJobs(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok()) break;
    for (const Job& job : response.jobs()) jobs.push_back(job);
    token = response.next_page_token();
    if (token.empty()) break;
  }
  return jobs;
}

// Waits until ListJobs shows no QUEUED/RUNNING job; returns them all.
std::vector<Job> WaitUntilIdle(dserve::v1::DiffusionService::Stub& stub,
                               absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    std::vector<Job> jobs = ListAll(stub);
    int active = 0;
    for (const Job& job : jobs) active += IsTerminal(job.state()) ? 0 : 1;
    if (active == 0 || absl::Now() > deadline) {
      EXPECT_EQ(active, 0) << "jobs still queued or running after " << timeout;
      return jobs;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
}

TEST(SoakTest, ChaosKeepsEveryJobAccountedAndResourcesFlat) {
  const int seconds = absl::GetFlag(FLAGS_soak_seconds);
  ASSERT_GE(seconds, 10);
  ASSERT_LE(seconds, 600) << "--soak_seconds is bounded to 10 minutes";
  const double warmup_fraction = absl::GetFlag(FLAGS_soak_warmup_fraction);
  ASSERT_GT(warmup_fraction, 0.0);
  ASSERT_LT(warmup_fraction, 1.0);

  ServerProcess::Options options;
  options.replicas = 2;
  options.queue_capacity = 64;
  absl::StatusOr<std::unique_ptr<ServerProcess>> started =
      ServerProcess::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  ServerProcess& server = **started;
  auto stub = dserve::v1::DiffusionService::NewStub(server.channel());
  absl::StatusOr<dserve::v1::ModelInfo> model = DefaultModel(*stub);
  ASSERT_TRUE(model.ok()) << model.status();
  const ProcessSample at_start = Sample(server.pid());

  // loadgen beside the chaos clients, for the whole run.
  std::unique_ptr<Subprocess> loadgen;
  const int loadgen_clients = absl::GetFlag(FLAGS_soak_loadgen_concurrency);
  if (loadgen_clients > 0) {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    ASSERT_NE(srcdir, nullptr);
    absl::StatusOr<std::unique_ptr<Subprocess>> lg = Subprocess::Start(
        {absl::StrCat(srcdir, "/dserve/clients/loadgen"),
         absl::StrCat("--server=", server.address()),
         absl::StrCat("--concurrency=", loadgen_clients),
         absl::StrCat("--duration_s=", seconds), "--mix=32x32:2,32x32:4",
         "--timeout_s=120"});
    ASSERT_TRUE(lg.ok()) << lg.status();
    loadgen = *std::move(lg);
  }

  Soak soak(&server, *model);
  const absl::Duration total = absl::Seconds(seconds);
  const absl::Duration warmup = total * warmup_fraction;
  const int clients = absl::GetFlag(FLAGS_soak_clients);
  const int kill_every_s = absl::GetFlag(FLAGS_soak_kill_every_s);
  soak.Run(warmup, clients, kill_every_s);
  WaitUntilIdle(*stub, absl::Seconds(120));
  const ProcessSample warm = Sample(server.pid());
  const int warm_kills = soak.kills();
  soak.Run(total - warmup, clients, kill_every_s);
  if (loadgen != nullptr) {
    absl::StatusOr<int> exit = loadgen->Wait(absl::Seconds(180));
    EXPECT_TRUE(exit.ok()) << exit.status();
  }
  const std::vector<Job> jobs = WaitUntilIdle(*stub, absl::Seconds(180));
  const ProcessSample end = Sample(server.pid());

  // Each job listed once; each client_request_id on at most one job.
  std::map<std::string, Job> by_id;
  std::map<std::string, std::string> by_crid;
  for (const Job& job : jobs) {
    EXPECT_TRUE(by_id.emplace(job.job_id(), job).second)
        << "job " << job.job_id() << " listed twice";
    EXPECT_TRUE(IsTerminal(job.state())) << job.job_id();
    const std::string& crid = job.request().client_request_id();
    if (!crid.empty()) {
      EXPECT_TRUE(by_crid.emplace(crid, job.job_id()).second)
          << "client_request_id " << crid << " on two jobs";
    }
  }

  // Every accepted request: its job is listed (or expired from the table),
  // terminal, and agrees with what its client saw.
  const std::vector<Record> records = soak.records();
  std::map<std::string, int> accepted_by_kind, requests_by_kind;
  std::map<std::string, int> states;
  int accepted = 0, expired = 0;
  for (const Record& r : records) {
    ++requests_by_kind[r.kind];
    if (r.job_id.empty()) {
      // Not accepted as far as the client knows; if the server made a job
      // for it anyway (a stream cut before its first event), that job is
      // listed once and terminal (checked above).
      continue;
    }
    ++accepted;
    ++accepted_by_kind[r.kind];
    auto it = by_id.find(r.job_id);
    if (it == by_id.end()) {
      absl::StatusOr<Job> job = GetJob(*stub, r.job_id);
      EXPECT_TRUE(!job.ok() && absl::IsNotFound(job.status()) &&
                  absl::StrContains(job.status().message(), "expired"))
          << "accepted job " << r.job_id << " (" << r.kind
          << ") lost: " << (job.ok() ? "found but not listed" : job.status().ToString());
      ++expired;
      continue;
    }
    const Job& job = it->second;
    ++states[dserve::v1::JobState_Name(job.state())];
    EXPECT_EQ(job.request().client_request_id(), r.client_request_id)
        << r.job_id;
    if (r.got_result) {
      EXPECT_EQ(job.state(), dserve::v1::JOB_STATE_SUCCEEDED) << r.job_id;
    }
    if (r.kind == "generate" && r.code == grpc::StatusCode::OK) {
      EXPECT_TRUE(r.got_result) << r.job_id << " ended OK without a result";
    }
    if (r.terminal_events >= 0) {
      EXPECT_EQ(r.terminal_events, 1)
          << "WatchJob of " << r.job_id << " saw " << r.terminal_events
          << " terminal events";
      if (r.terminal_events == 1) {
        EXPECT_EQ(r.watched_state, job.state()) << r.job_id;
      }
    }
  }

  // The server is still whole.
  absl::StatusOr<HealthStatus> health = server.CheckHealth(absl::Seconds(10));
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::SERVING);

  std::cout << "soak: " << seconds << " s, " << clients << " chaos clients + "
            << loadgen_clients << " loadgen client(s), " << soak.kills()
            << " worker SIGKILLs (" << warm_kills << " in warm-up)\n";
  std::cout << "soak: " << records.size() << " chaos requests, " << accepted
            << " accepted (" << expired << " already expired from the table), "
            << jobs.size() << " jobs listed in all (loadgen's included)\n";
  for (const auto& [kind, n] : requests_by_kind) {
    std::cout << "soak:   " << kind << ": " << n << " requests, "
              << accepted_by_kind[kind] << " accepted\n";
  }
  for (const auto& [state, n] : states) {
    std::cout << "soak:   ended " << state << ": " << n << "\n";
  }
  std::cout << "soak: server RSS " << at_start.rss_bytes / 1024 << " KiB at start, "
            << warm.rss_bytes / 1024 << " KiB after warm-up, "
            << end.rss_bytes / 1024 << " KiB at end (tolerance +"
            << kRssToleranceBytes / 1024 << " KiB)\n";
  std::cout << "soak: server fds " << at_start.fds << " at start, " << warm.fds
            << " after warm-up, " << end.fds << " at end (tolerance +"
            << kFdTolerance << ")\n";

  EXPECT_GT(accepted, 0);
  if (kill_every_s > 0 && seconds >= 3 * kill_every_s) {
    EXPECT_GT(soak.kills(), 0);
  }
  EXPECT_LE(end.rss_bytes, warm.rss_bytes + kRssToleranceBytes);
  EXPECT_LE(end.fds, warm.fds + kFdTolerance);

  absl::StatusOr<int> exit = server.Stop();
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(*exit, 0);
}

}  // namespace
}  // namespace dserve::tests

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  absl::ParseCommandLine(argc, argv);
  return RUN_ALL_TESTS();
}
