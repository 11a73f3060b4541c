// The server's internal surfaces through real processes (issue 16, findings
// 6 and 8):
//  * the replica leader answers only calls carrying the replica's secret: a
//    local caller that finds its port (here through --expose_internals) gets
//    UNAUTHENTICATED and its 250-step plan (beyond --max_steps=4) never runs;
//  * every port a worker listens on is loopback (no c10d TCPStore on all
//    interfaces), and the secret is neither on a worker's command line nor
//    left in its environment;
//  * /metrics listens on loopback by default and refuses request bodies;
//  * a SIGTERM that arrives while the server is still starting drains it
//    (exit 0), and a bearer token without TLS is warned about.

#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/replica_secret.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "proto/dserve/internal/v1/replica_leader.grpc.pb.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"

namespace dserve::tests {
namespace {

using ::dserve::internal::v1::ExecutionEvent;
using ::dserve::internal::v1::ExecutionPlan;
using ::dserve::internal::v1::ReplicaLeader;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Socket inodes of `pid`'s open descriptors.
std::set<std::string> SocketInodes(int pid) {
  std::set<std::string> inodes;
  const std::string dir = absl::StrCat("/proc/", pid, "/fd");
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return inodes;
  while (dirent* entry = readdir(d)) {
    char target[256];
    const std::string link = absl::StrCat(dir, "/", entry->d_name);
    const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    absl::string_view t(target, static_cast<size_t>(n));
    if (absl::ConsumePrefix(&t, "socket:[") && absl::ConsumeSuffix(&t, "]")) {
      inodes.insert(std::string(t));
    }
  }
  closedir(d);
  return inodes;
}

struct Listener {
  std::string local_address;  // As /proc/net/tcp{,6} writes it (hex).
  int port = 0;
};

// The TCP sockets in LISTEN state among `inodes`.
std::vector<Listener> Listeners(const std::set<std::string>& inodes) {
  std::vector<Listener> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::istringstream lines(ReadFile(table));
    std::string line;
    std::getline(lines, line);  // Header.
    while (std::getline(lines, line)) {
      std::vector<std::string> f =
          absl::StrSplit(line, ' ', absl::SkipWhitespace());
      // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
      if (f.size() < 10 || f[3] != "0A" || inodes.count(f[9]) == 0) continue;
      std::vector<std::string> address = absl::StrSplit(f[1], ':');
      Listener l;
      l.local_address = address[0];
      l.port = static_cast<int>(std::stoul(address[1], nullptr, 16));
      out.push_back(l);
    }
  }
  return out;
}

bool IsLoopback(const std::string& hex) {
  return hex == "0100007F" ||                           // 127.0.0.1
         hex == "00000000000000000000000001000000" ||   // ::1
         hex == "0000000000000000FFFF00000100007F";     // ::ffff:127.0.0.1
}

ExecutionPlan BigPlan() {
  ExecutionPlan plan;
  plan.set_width(64);
  plan.set_height(64);
  plan.set_num_frames(1);
  plan.set_num_inference_steps(250);  // The server allows --max_steps=4.
  plan.set_flow_shift(1.0f);
  plan.set_output_format(dserve::v1::OUTPUT_FORMAT_PNG);
  auto* item = plan.add_items();
  item->set_job_id("j-intruder");
  item->set_prompt("a red square");
  item->set_seed(1);
  item->set_guidance_scale(3.0f);
  return plan;
}

class InternalSurfacesE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<int> metrics_port = PickFreePort();
    ASSERT_TRUE(metrics_port.ok()) << metrics_port.status();
    metrics_port_ = *metrics_port;
    ServerProcess::Options options;
    options.replicas = 1;
    options.extra_flags = {"--expose_internals", "--max_steps=4",
                           absl::StrCat("--metrics_port=", metrics_port_)};
    auto server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }

  static void TearDownTestSuite() {
    if (server_ == nullptr) return;
    absl::StatusOr<int> code = server_->Stop();
    EXPECT_TRUE(code.ok()) << code.status();
    if (code.ok()) {
      EXPECT_EQ(*code, 0);
    }
    delete server_;
    server_ = nullptr;
  }

  static dserve::v1::ReplicaInfo Replica() {
    auto stub = dserve::v1::DiffusionService::NewStub(server_->channel());
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    dserve::v1::ServerInfo info;
    grpc::Status status = stub->GetServerInfo(&context, {}, &info);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(info.replicas_size(), 1);
    return info.replicas_size() > 0 ? info.replicas(0)
                                    : dserve::v1::ReplicaInfo();
  }

  static inline ServerProcess* server_ = nullptr;
  static inline int metrics_port_ = 0;
};

TEST_F(InternalSurfacesE2eTest, LeaderRefusesCallersWithoutTheSecret) {
  const dserve::v1::ReplicaInfo before = Replica();
  ASSERT_THAT(before.leader_address(), ::testing::StartsWith("127.0.0.1:"))
      << "--expose_internals shows the leader address";
  ASSERT_EQ(before.pids_size(), 1);
  auto leader = ReplicaLeader::NewStub(grpc::CreateChannel(
      before.leader_address(), grpc::InsecureChannelCredentials()));
  const std::string guesses[] = {"", "0123456789abcdef", std::string(64, 'a')};
  for (const std::string& guess : guesses) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (!guess.empty()) {
      context.AddMetadata(common::kReplicaSecretMetadata, guess);
    }
    auto reader = leader->Execute(&context, BigPlan());
    ExecutionEvent event;
    int events = 0;
    while (reader->Read(&event)) ++events;
    const grpc::Status status = reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << "guess '" << guess << "': " << status.error_message();
    EXPECT_EQ(events, 0) << "no step of the plan may run";
  }
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    dserve::internal::v1::ReplicaStatus status;
    EXPECT_EQ(leader->GetStatus(&context, {}, &status).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // The replica never ran the plan: idle, nothing completed, and the
  // frontend (which has the secret) still drives it.
  const dserve::v1::ReplicaInfo after = Replica();
  EXPECT_EQ(after.state(), dserve::v1::REPLICA_STATE_READY);
  EXPECT_EQ(after.jobs_completed(), before.jobs_completed());
  auto stub = dserve::v1::DiffusionService::NewStub(server_->channel());
  absl::StatusOr<dserve::v1::ModelInfo> model = DefaultModel(*stub);
  ASSERT_TRUE(model.ok()) << model.status();
  dserve::v1::GenerateRequest request = SmallRequest(*model);
  request.set_num_inference_steps(2);
  GenerateOutcome outcome = GenerateToEnd(*stub, request, absl::Seconds(120));
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(Replica().jobs_completed(), before.jobs_completed() + 1);
}

TEST_F(InternalSurfacesE2eTest, WorkersListenOnLoopbackOnlyAndHideTheSecret) {
  const dserve::v1::ReplicaInfo replica = Replica();
  ASSERT_GT(replica.pids_size(), 0);
  int listening = 0;
  for (int pid : replica.pids()) {
    for (const Listener& l : Listeners(SocketInodes(pid))) {
      ++listening;
      EXPECT_TRUE(IsLoopback(l.local_address))
          << "worker pid " << pid << " listens on " << l.local_address << ":"
          << l.port << " (not loopback)";
    }
    const std::string cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    EXPECT_THAT(cmdline, HasSubstr("--store_file="));
    EXPECT_THAT(cmdline, ::testing::Not(HasSubstr("SECRET")));
    // The environment block still names the variable, but the worker wiped
    // its value on start.
    const std::string environ = ReadFile(absl::StrCat("/proc/", pid, "/environ"));
    for (absl::string_view entry : absl::StrSplit(environ, '\0')) {
      if (absl::ConsumePrefix(&entry, common::kReplicaSecretEnv) &&
          absl::ConsumePrefix(&entry, "=")) {
        EXPECT_EQ(entry, "") << "the secret is still in pid " << pid
                             << "'s environment";
      }
    }
  }
  EXPECT_GE(listening, 1) << "the leader's port was not found";
}

TEST_F(InternalSurfacesE2eTest, MetricsListenOnLoopbackAndRefuseBodies) {
  bool found = false;
  for (const Listener& l : Listeners(SocketInodes(server_->pid()))) {
    if (l.port != metrics_port_) continue;
    found = true;
    EXPECT_TRUE(IsLoopback(l.local_address)) << l.local_address;
  }
  EXPECT_TRUE(found) << "metrics port " << metrics_port_ << " not listening";
  // The server closes on the refused body while the client still writes.
  signal(SIGPIPE, SIG_IGN);
  httplib::Client client("127.0.0.1", metrics_port_);
  auto scrape = client.Get("/metrics");
  ASSERT_TRUE(scrape);
  EXPECT_EQ(scrape->status, 200);
  auto post = client.Post("/metrics", std::string(1 << 20, 'x'), "text/plain");
  if (post) {  // Else: the connection was reset before the reply was read.
    EXPECT_EQ(post->status, 413);
  }
}

TEST_F(InternalSurfacesE2eTest, ServerInfoHidesInternalsWithoutTheFlag) {
  // The suite's server runs with --expose_internals; a second one without.
  ServerProcess::Options options;
  options.replicas = 1;
  auto plain = ServerProcess::Start(options);
  ASSERT_TRUE(plain.ok()) << plain.status();
  auto stub = dserve::v1::DiffusionService::NewStub((*plain)->channel());
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  dserve::v1::ServerInfo info;
  ASSERT_TRUE(stub->GetServerInfo(&context, {}, &info).ok());
  ASSERT_EQ(info.replicas_size(), 1);
  EXPECT_EQ(info.replicas(0).leader_address(), "");
  EXPECT_EQ(info.replicas(0).pids_size(), 0);
  EXPECT_EQ(info.replicas(0).state(), dserve::v1::REPLICA_STATE_READY);
  absl::StatusOr<int> code = (*plain)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

// SIGTERM as soon as the server logs that it is starting its replicas
// (inside BuildAndStart, before the port is even bound): it drains and
// exits 0 instead of dying of the signal. Its token file without TLS draws
// the plaintext warning.
TEST(EarlySignalE2eTest, SigtermDuringStartDrainsAndPlaintextTokenWarns) {
  absl::StatusOr<std::string> binary = RunfilePath("server/dserve_server");
  absl::StatusOr<std::string> worker = RunfilePath("worker/dserve_worker");
  absl::StatusOr<int> port = PickFreePort();
  ASSERT_TRUE(binary.ok() && worker.ok() && port.ok());
  const std::string dir = TestTempDir();
  const std::string token = dir + "/early_token";
  std::ofstream(token) << "tok-early-1234\n";
  const std::string log = dir + "/early_server.log";
  auto process = Subprocess::Start(
      {*binary, absl::StrCat("--port=", *port), "--replicas=1",
       absl::StrCat("--worker_binary=", *worker),
       absl::StrCat("--auth_token_file=", token)},
      log, log + ".err");  // The server logs to stdout.
  ASSERT_TRUE(process.ok()) << process.status();
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (!absl::StrContains(ReadFile(log), "starting 1 replica") &&
         absl::Now() < give_up && (*process)->running()) {
    absl::SleepFor(absl::Microseconds(200));
  }
  ASSERT_THAT(ReadFile(log), HasSubstr("starting 1 replica"));
  ASSERT_TRUE((*process)->Signal(SIGTERM).ok());
  absl::StatusOr<int> code = (*process)->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << ReadFile(log);
  EXPECT_EQ(*code, 0) << ReadFile(log);
  const std::string text = ReadFile(log);
  EXPECT_THAT(text, HasSubstr("draining"));
  EXPECT_THAT(text, HasSubstr("crosses the network unencrypted"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("tok-early-1234")));
}

}  // namespace
}  // namespace dserve::tests
