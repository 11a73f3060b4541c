// Multi-process test of a replica: starts real dserve_worker processes on
// loopback (exactly as the server spawns them: rank 0 reports its store and
// leader ports on --ready_fd, the other ranks join through the store) and
// drives them through the ReplicaLeader RPC.
//
// Run by Bazel with --worker_binary=<runfiles path of //worker:dserve_worker>.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/png.h"
#include "common/testing/png_compare.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "parallel/mesh_layout.h"
#include "proto/dserve/internal/v1/replica_leader.grpc.pb.h"

extern char** environ;

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionEvent;
using ::dserve::internal::v1::ExecutionPlan;
using ::dserve::internal::v1::GetStatusRequest;
using ::dserve::internal::v1::ReplicaStatus;

std::string g_worker_binary = "worker/dserve_worker";
std::string g_make_model_binary = "worker/models/make_random_model";

// Seed of the random model the --model_dir test writes.
constexpr uint64_t kRandomModelSeed = 20240601;

// Runfiles path (the test's working directory) of the shipped default model.
constexpr char kShippedModelDir[] = "worker/models/default_model/weights";

// The descriptor number the ready pipe gets in the child.
constexpr int kChildReadyFd = 100;

// Reads one '\n'-terminated line from `fd`, or nullopt on EOF / timeout.
std::optional<std::string> ReadLine(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string line;
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    const int ready =
        ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    char c;
    const ssize_t n = ::read(fd, &c, 1);
    if (n <= 0) return std::nullopt;
    if (c == '\n') return line;
    line.push_back(c);
  }
}

// Waits for `pid` to exit; its wait status, or nullopt if still running
// after `timeout`.
std::optional<int> WaitExit(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (absl::Now() > deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

// True while `pid` exists and is not a zombie (an orphan's zombie may wait
// for a reaper that is not us).
bool ProcessRunning(pid_t pid) {
  FILE* f = std::fopen(absl::StrCat("/proc/", pid, "/stat").c_str(), "r");
  if (f == nullptr) return false;
  int read_pid = 0;
  char comm[256] = {0};
  char state = '?';
  const int n = std::fscanf(f, "%d %255s %c", &read_pid, comm, &state);
  std::fclose(f);
  return n == 3 && state != 'Z' && state != 'X';
}

// One replica of real worker processes. Kills whatever is left on
// destruction.
class ReplicaProcesses {
 public:
  ~ReplicaProcesses() {
    for (pid_t pid : pids_) {
      if (pid > 0 && !WaitExit(pid, absl::ZeroDuration()).has_value()) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
    if (ready_read_ >= 0) ::close(ready_read_);
  }

  // Starts `world` ranks laid out as `mesh` and waits until rank 0 serves
  // ReplicaLeader.
  //
  // With `orphanable`, rank 0 runs under a `sleep` (sh execs it after
  // starting the worker in the background) that KillParentOfRankZero ends,
  // so the worker's parent dies while the worker lives on.
  void Start(int world, const std::string& mesh, bool orphanable = false,
             const std::string& model_dir = "") {
    mesh_ = mesh;
    orphanable_ = orphanable;
    model_dir_ = model_dir;
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    ready_read_ = fds[0];
    pids_.push_back(Spawn(0, world, "127.0.0.1:0", fds[1]));
    ::close(fds[1]);  // EOF on ready_read_ once rank 0 is gone.

    std::optional<std::string> store = ReadLine(ready_read_, absl::Seconds(60));
    ASSERT_TRUE(store.has_value()) << "rank 0 never reported its store";
    int store_port = 0;
    absl::string_view store_line = *store;
    ASSERT_TRUE(absl::ConsumePrefix(&store_line, "store ")) << *store;
    ASSERT_TRUE(absl::SimpleAtoi(store_line, &store_port)) << *store;
    ASSERT_GT(store_port, 0);
    for (int rank = 1; rank < world; ++rank) {
      pids_.push_back(
          Spawn(rank, world, absl::StrCat("127.0.0.1:", store_port), -1));
    }
    std::optional<std::string> leader =
        ReadLine(ready_read_, absl::Seconds(120));
    ASSERT_TRUE(leader.has_value()) << "rank 0 never reported its leader port";
    absl::string_view leader_line = *leader;
    ASSERT_TRUE(absl::ConsumePrefix(&leader_line, "leader ")) << *leader;
    ASSERT_TRUE(absl::SimpleAtoi(leader_line, &leader_port_)) << *leader;
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", leader_port_),
                                       grpc::InsecureChannelCredentials());
    stub_ = dserve::internal::v1::ReplicaLeader::NewStub(channel);
  }

  dserve::internal::v1::ReplicaLeader::Stub& stub() { return *stub_; }
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  pid_t Spawn(int rank, int world, const std::string& store, int ready_fd) {
    std::vector<std::string> args = {
        g_worker_binary,
        "--replica=0",
        absl::StrCat("--rank=", rank),
        absl::StrCat("--world=", world),
        absl::StrCat("--store=", store),
        "--device=cpu",
        "--threads=1",
        "--leader_address=127.0.0.1:0",
        absl::StrCat("--mesh=", mesh_),
        absl::StrCat("--model_dir=", model_dir_),
    };
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (ready_fd >= 0) {
      // dup2 clears close-on-exec on the copy, so only this child keeps it.
      posix_spawn_file_actions_adddup2(&actions, ready_fd, kChildReadyFd);
      args.push_back(absl::StrCat("--ready_fd=", kChildReadyFd));
    }
    std::string program = g_worker_binary;
    if (orphanable_ && rank == 0) {
      program = "/bin/sh";
      args.insert(args.begin(),
                  {"/bin/sh", "-c", "\"$0\" \"$@\" & exec sleep 600"});
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, program.c_str(), &actions, nullptr,
                               argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    EXPECT_EQ(rc, 0) << "posix_spawn " << program << ": " << strerror(rc);
    return pid;
  }

  std::string mesh_;
  std::string model_dir_;
  bool orphanable_ = false;
  int ready_read_ = -1;
  int leader_port_ = 0;
  std::vector<pid_t> pids_;
  std::unique_ptr<dserve::internal::v1::ReplicaLeader::Stub> stub_;
};

ExecutionPlan Plan(int size, int steps, uint64_t seed) {
  ExecutionPlan plan;
  plan.set_width(size);
  plan.set_height(size);
  plan.set_num_frames(1);
  plan.set_num_inference_steps(steps);
  plan.set_flow_shift(1.0f);
  plan.set_output_format(dserve::v1::OUTPUT_FORMAT_PNG);
  auto* item = plan.add_items();
  item->set_job_id(absl::StrCat("job-", seed));
  item->set_prompt("a red circle on a blue zebra");
  item->set_negative_prompt("");
  item->set_seed(seed);
  item->set_guidance_scale(4.0f);
  return plan;
}

struct ExecuteResult {
  grpc::Status status;
  std::vector<ExecutionEvent> events;
};

// Runs `plan`; if `cancel_after_steps` >= 0 cancels the RPC once that many
// StepDone events arrived.
ExecuteResult Execute(dserve::internal::v1::ReplicaLeader::Stub& stub,
                      const ExecutionPlan& plan, int cancel_after_steps = -1,
                      absl::Duration deadline = absl::Seconds(120)) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(deadline));
  auto reader = stub.Execute(&context, plan);
  ExecuteResult result;
  ExecutionEvent event;
  int steps = 0;
  while (reader->Read(&event)) {
    result.events.push_back(event);
    if (event.has_step() && ++steps == cancel_after_steps) context.TryCancel();
  }
  result.status = reader->Finish();
  return result;
}

std::string OnlyPng(const ExecuteResult& result) {
  EXPECT_FALSE(result.events.empty());
  if (result.events.empty()) return "";
  const ExecutionEvent& last = result.events.back();
  EXPECT_TRUE(last.has_done());
  EXPECT_EQ(last.done().items_size(), 1);
  if (last.done().items_size() != 1) return "";
  EXPECT_EQ(last.done().items(0).media_size(), 1);
  if (last.done().items(0).media_size() != 1) return "";
  return last.done().items(0).media(0).data();
}

// The 2-rank replica shards the CFG batch and attention, so its fp32 sums
// associate differently from the 1-rank reference: the same picture up to
// one 8-bit level at rounding boundaries
// (common::testing::SamePictureUpToRounding).
void ExpectSamePicture(const std::string& png, const std::string& reference) {
  auto got = common::DecodePng(png);
  auto want = common::DecodePng(reference);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(want.ok()) << want.status();
  auto diff = common::testing::ComparePixels(*got, *want);
  ASSERT_TRUE(diff.ok()) << diff.status();
  EXPECT_TRUE(common::testing::SamePictureUpToRounding(*diff))
      << "max |diff| " << diff->max_abs << ", " << diff->differing << " of "
      << diff->total << " bytes differ";
}

TEST(WorkerReplicaTest, TwoRanksServePlansCancelAndDieWithAPeer) {
  // Reference: the same plan on a 1-rank replica.
  std::string reference_png;
  {
    ReplicaProcesses single;
    ASSERT_NO_FATAL_FAILURE(single.Start(1, ""));
    ExecuteResult r = Execute(single.stub(), Plan(32, 4, 7));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    reference_png = OnlyPng(r);
    ASSERT_FALSE(reference_png.empty());
  }

  ReplicaProcesses replica;
  ASSERT_NO_FATAL_FAILURE(replica.Start(2, "cfg=2"));

  // Status: layout, pids of both ranks, the model, idle.
  ReplicaStatus status;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(
        replica.stub().GetStatus(&context, GetStatusRequest(), &status).ok());
    EXPECT_EQ(status.world_size(), 2);
    ASSERT_EQ(status.pids_size(), 2);
    EXPECT_EQ(status.pids(0), replica.pids()[0]);
    EXPECT_EQ(status.pids(1), replica.pids()[1]);
    ASSERT_EQ(status.models_size(), 1);
    EXPECT_TRUE(status.models(0).is_default());
    EXPECT_GT(status.models(0).vocabulary_size(), 0);
    EXPECT_EQ(dserve::parallel::FormatMeshSpec(
                  dserve::parallel::MeshDegreesFromLayout(status.mesh())
                      .value()),
              "dp=1,cfg=2,ring=1,ulysses=1,pp=1,tp=1");
    EXPECT_FALSE(status.busy());
  }

  // A small plan: ENCODE, one StepDone per step (a preview every 2nd),
  // DECODE as the item's one chunk starts and ends, then a PNG identical to
  // 1 rank's and a warning per prompt word the model lacks.
  {
    ExecutionPlan plan = Plan(32, 4, 7);
    plan.mutable_items(0)->set_preview_every_n_steps(2);
    ExecuteResult r = Execute(replica.stub(), plan);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    ASSERT_EQ(r.events.size(), 8u);
    ASSERT_TRUE(r.events[0].has_stage());
    EXPECT_EQ(r.events[0].stage().stage(), dserve::v1::PROGRESS_STAGE_ENCODE);
    EXPECT_EQ(r.events[0].stage().step(), 0);
    EXPECT_EQ(r.events[0].stage().total(), 4);
    EXPECT_EQ(r.events[0].stage().job_id(), "");
    for (int d = 0; d < 2; ++d) {
      const ExecutionEvent& e = r.events[5 + d];
      ASSERT_TRUE(e.has_stage()) << "event " << 5 + d;
      EXPECT_EQ(e.stage().stage(), dserve::v1::PROGRESS_STAGE_DECODE);
      EXPECT_EQ(e.stage().step(), d);
      EXPECT_EQ(e.stage().total(), 1);
      EXPECT_EQ(e.stage().job_id(), "job-7");
    }
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(r.events[1 + i].has_step());
      const auto& step = r.events[1 + i].step();
      EXPECT_EQ(step.step(), i + 1);
      EXPECT_EQ(step.total(), 4);
      EXPECT_GT(step.step_ms(), 0.0);
      if ((i + 1) % 2 == 0) {
        ASSERT_EQ(step.previews().count("job-7"), 1u) << "step " << i + 1;
        auto preview = common::DecodePng(step.previews().at("job-7").data());
        ASSERT_TRUE(preview.ok()) << preview.status();
        EXPECT_EQ(preview->width, 32);
      } else {
        EXPECT_TRUE(step.previews().empty()) << "step " << i + 1;
      }
    }
    const std::string png = OnlyPng(r);
    auto decoded = common::DecodePng(png);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->width, 32);
    EXPECT_EQ(decoded->height, 32);
    ExpectSamePicture(png, reference_png);

    const std::set<std::string> vocabulary(
        status.models(0).vocabulary().begin(),
        status.models(0).vocabulary().end());
    std::vector<std::string> expected;
    std::set<std::string> warned;
    for (const char* word :
         {"a", "red", "circle", "on", "a", "blue", "zebra"}) {
      if (vocabulary.count(word) == 0 && warned.insert(word).second) {
        expected.push_back(absl::StrCat("prompt word '", word,
                                        "' is not in the model's vocabulary; "
                                        "it was read as <unk>"));
      }
    }
    const auto& warnings = r.events.back().done().items(0).warnings();
    EXPECT_EQ(std::vector<std::string>(warnings.begin(), warnings.end()),
              expected);
  }

  // An invalid plan is refused before any rank runs it.
  {
    ExecutionPlan bad = Plan(32, 4, 7);
    bad.set_width(33);
    ExecuteResult r = Execute(replica.stub(), bad);
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(r.status.error_message().find("width"), std::string::npos)
        << r.status.error_message();
  }

  // Cancel mid-way: the stream ends CANCELLED before the last step, and the
  // replica is still in lockstep afterwards.
  {
    ExecuteResult r = Execute(replica.stub(), Plan(64, 100, 8),
                              /*cancel_after_steps=*/2);
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::CANCELLED)
        << r.status.error_message();
    int steps = 0;
    for (const auto& e : r.events) {
      EXPECT_FALSE(e.has_done());
      if (e.has_step()) ++steps;
    }
    EXPECT_GE(steps, 2);
    EXPECT_LT(steps, 100);

    ExecuteResult again = Execute(replica.stub(), Plan(32, 4, 7));
    ASSERT_TRUE(again.status.ok()) << again.status.error_message();
    ExpectSamePicture(OnlyPng(again), reference_png);
  }

  // The caller's deadline passes mid-plan: the stream ends
  // DEADLINE_EXCEEDED and the replica keeps working.
  {
    const absl::Time start = absl::Now();
    ExecuteResult r =
        Execute(replica.stub(), Plan(64, 100, 9),
                /*cancel_after_steps=*/-1, absl::Milliseconds(300));
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
        << r.status.error_message();
    EXPECT_LT(absl::Now() - start, absl::Seconds(5));
    ExecuteResult again = Execute(replica.stub(), Plan(32, 4, 7));
    ASSERT_TRUE(again.status.ok()) << again.status.error_message();
    ExpectSamePicture(OnlyPng(again), reference_png);
  }

  // A peer dies: rank 0 notices at its next heartbeat and exits non-zero.
  const absl::Time killed = absl::Now();
  ASSERT_EQ(::kill(replica.pids()[1], SIGKILL), 0);
  std::optional<int> exit_status =
      WaitExit(replica.pids()[0], absl::Seconds(10));
  ASSERT_TRUE(exit_status.has_value())
      << "rank 0 still running 10 s after rank 1 died";
  std::cerr << "rank 0 exited " << absl::FormatDuration(absl::Now() - killed)
            << " after rank 1 was killed\n";
  EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) != 0)
      << "wait status " << *exit_status;
}

TEST(WorkerReplicaTest, SigtermStopsEveryRankWithExitZero) {
  ReplicaProcesses replica;
  ASSERT_NO_FATAL_FAILURE(replica.Start(2, "cfg=2"));
  for (pid_t pid : replica.pids()) ASSERT_EQ(::kill(pid, SIGTERM), 0);
  for (pid_t pid : replica.pids()) {
    std::optional<int> exit_status = WaitExit(pid, absl::Seconds(15));
    ASSERT_TRUE(exit_status.has_value()) << "pid " << pid << " ignored SIGTERM";
    EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0)
        << "pid " << pid << " wait status " << *exit_status;
  }
}

TEST(WorkerReplicaTest, FollowerExitsWhenTheLeaderDies) {
  ReplicaProcesses replica;
  ASSERT_NO_FATAL_FAILURE(replica.Start(2, "cfg=2"));
  ASSERT_EQ(::kill(replica.pids()[0], SIGKILL), 0);
  std::optional<int> exit_status =
      WaitExit(replica.pids()[1], absl::Seconds(10));
  ASSERT_TRUE(exit_status.has_value())
      << "rank 1 still running 10 s after rank 0 died";
  EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) != 0)
      << "wait status " << *exit_status;
}

// With no --model_dir a worker serves the shipped default model; a
// --model_dir is honoured (here a random model, which draws another picture).
TEST(WorkerReplicaTest, DefaultIsTheShippedModelAndModelDirIsHonoured) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/dserve_model_XXXXXX");
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  {
    std::vector<std::string> args = {
        g_make_model_binary, absl::StrCat("--out_dir=", dir),
        absl::StrCat("--seed=", kRandomModelSeed)};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    ASSERT_EQ(posix_spawn(&pid, g_make_model_binary.c_str(), nullptr, nullptr,
                          argv.data(), environ),
              0);
    std::optional<int> status = WaitExit(pid, absl::Seconds(60));
    ASSERT_TRUE(status.has_value());
    ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  }

  std::string built_in_png;
  {
    ReplicaProcesses replica;
    ASSERT_NO_FATAL_FAILURE(replica.Start(1, ""));
    ExecuteResult r = Execute(replica.stub(), Plan(32, 3, 11));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    built_in_png = OnlyPng(r);
  }
  EXPECT_FALSE(built_in_png.empty());
  {
    ReplicaProcesses replica;
    ASSERT_NO_FATAL_FAILURE(replica.Start(2, "cfg=2", false, kShippedModelDir));
    ExecuteResult r = Execute(replica.stub(), Plan(32, 3, 11));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(OnlyPng(r), built_in_png)
        << "the default model is not the shipped weights";
  }
  ReplicaProcesses replica;
  ASSERT_NO_FATAL_FAILURE(replica.Start(1, "", false, dir));
  ExecuteResult r = Execute(replica.stub(), Plan(32, 3, 11));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_NE(OnlyPng(r), built_in_png) << "--model_dir was ignored";
}

TEST(WorkerReplicaTest, LeaderExitsWhenItsParentDies) {
  ReplicaProcesses replica;
  ASSERT_NO_FATAL_FAILURE(replica.Start(1, "", /*orphanable=*/true));
  grpc::ClientContext context;
  ReplicaStatus status;
  ASSERT_TRUE(
      replica.stub().GetStatus(&context, GetStatusRequest(), &status).ok());
  ASSERT_EQ(status.pids_size(), 1);
  const pid_t worker = status.pids(0);
  ASSERT_NE(worker, replica.pids()[0]);  // the worker is the sleep's child
  ASSERT_TRUE(ProcessRunning(worker));

  ASSERT_EQ(::kill(replica.pids()[0], SIGKILL), 0);
  ASSERT_TRUE(WaitExit(replica.pids()[0], absl::Seconds(5)).has_value());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (ProcessRunning(worker) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_FALSE(ProcessRunning(worker))
      << "worker " << worker << " outlived its parent by 10 s";
  if (ProcessRunning(worker)) ::kill(worker, SIGKILL);
}

}  // namespace
}  // namespace dserve::worker

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--worker_binary=")) {
      dserve::worker::g_worker_binary = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--make_model_binary=")) {
      dserve::worker::g_make_model_binary = std::string(arg);
    }
  }
  return RUN_ALL_TESTS();
}
