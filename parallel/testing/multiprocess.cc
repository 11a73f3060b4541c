#include "parallel/testing/multiprocess.h"

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

extern char** environ;

namespace dserve::parallel::testing {
namespace {

constexpr char kRankFlag[] = "--dserve_mp_rank=";
constexpr char kWorldFlag[] = "--dserve_mp_world=";
constexpr char kPortFlag[] = "--dserve_mp_port=";
constexpr char kCallFlag[] = "--dserve_mp_call=";
constexpr std::chrono::milliseconds kStoreTimeout{30000};

// Environment a rank process must not inherit: the parent alone reports to
// Bazel (XML, premature-exit marker) and decides sharding.
constexpr const char* kDroppedEnv[] = {
    "GTEST_OUTPUT=",        "XML_OUTPUT_FILE=",
    "TEST_PREMATURE_EXIT_FILE=", "GTEST_SHARD_INDEX=",
    "GTEST_TOTAL_SHARDS=",  "GTEST_SHARD_STATUS_FILE=",
    "TEST_SHARD_STATUS_FILE=", "TEST_SHARD_INDEX=",
    "TEST_TOTAL_SHARDS="};

struct RankArgs {
  int rank = -1;
  int world = 0;
  int port = 0;
  int call = -1;
};

// The harness reads its own argv (not the environment) to learn whether it
// is a rank process; gtest_main does not hand argv to tests, so read it
// from /proc.
std::vector<std::string> SelfArgv() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)),
                  std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::string current;
  for (char c : all) {
    if (c == '\0') {
      args.push_back(current);
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) args.push_back(current);
  return args;
}

const std::optional<RankArgs>& ParsedRankArgs() {
  static const std::optional<RankArgs> parsed = []() -> std::optional<RankArgs> {
    RankArgs out;
    bool any = false;
    for (const std::string& arg : SelfArgv()) {
      auto take = [&](const char* flag, int* field) {
        if (absl::StartsWith(arg, flag) &&
            absl::SimpleAtoi(arg.substr(std::strlen(flag)), field)) {
          any = true;
        }
      };
      take(kRankFlag, &out.rank);
      take(kWorldFlag, &out.world);
      take(kPortFlag, &out.port);
      take(kCallFlag, &out.call);
    }
    if (!any) return std::nullopt;
    return out;
  }();
  return parsed;
}

// Which RunRanks call of the current test this is (0, 1, ...). Computed the
// same way in the parent and in rank processes, which run the same test body.
absl::StatusOr<std::pair<std::string, int>> NextCall() {
  static std::string last_test;
  static int next_call = 0;
  const ::testing::TestInfo* info =
      ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) {
    return absl::FailedPreconditionError(
        "RunRanks must be called from inside a gtest TEST body");
  }
  std::string test = absl::StrCat(info->test_suite_name(), ".", info->name());
  if (test != last_test) {
    last_test = test;
    next_call = 0;
  }
  return std::make_pair(test, next_call++);
}

[[noreturn]] void RunAsRank(const RankArgs& args, const RankFn& fn) {
  int code = 0;
  try {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(args.port);
    opts.isServer = false;
    opts.waitWorkers = false;
    opts.timeout = kStoreTimeout;
    auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", opts);
    fn(args.rank, args.world, store);
    code = ::testing::Test::HasFailure() ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "rank " << args.rank << ": uncaught exception: " << e.what()
              << std::endl;
    code = 2;
  }
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  // Skip gtest's end-of-program reporting and static destructors: the parent
  // reports for the whole test.
  _exit(code);
}

std::string Describe(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return absl::StrCat("exit code ", WEXITSTATUS(wait_status));
  }
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(wait_status));
  }
  return "stopped";
}

}  // namespace

bool InRankProcess() { return ParsedRankArgs().has_value(); }

absl::Status RunRanks(int world, const RankFn& fn, absl::Duration timeout) {
  if (world < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("RunRanks: world ", world, " must be >= 1"));
  }
  absl::StatusOr<std::pair<std::string, int>> call = NextCall();
  if (!call.ok()) return call.status();
  const std::string& test_name = call->first;

  if (const auto& args = ParsedRankArgs(); args.has_value()) {
    if (args->call != call->second) return absl::OkStatus();
    RunAsRank(*args, fn);
  }

  // Parent: host the store, start one process per rank, collect exit codes.
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    c10d::TCPStoreOptions opts;
    opts.port = 0;  // the kernel picks a free port; ranks learn it by flag
    opts.isServer = true;
    opts.waitWorkers = false;
    opts.timeout = kStoreTimeout;
    store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", opts);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("RunRanks: cannot host a TCPStore on 127.0.0.1: ",
                     e.what()));
  }
  const int port = store->getPort();

  char exe[4096];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len <= 0) {
    return absl::InternalError(absl::StrCat(
        "RunRanks: readlink(/proc/self/exe) failed: ", std::strerror(errno)));
  }
  exe[len] = '\0';

  // Everything execve needs is built before fork: between fork and exec the
  // child of a multi-threaded process may only make async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    bool drop = false;
    for (const char* prefix : kDroppedEnv) drop |= absl::StartsWith(*e, prefix);
    if (!drop) env_strings.push_back(*e);
  }
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  std::vector<std::vector<std::string>> argv_strings(world);
  std::vector<std::vector<char*>> argvs(world);
  for (int r = 0; r < world; ++r) {
    argv_strings[r] = {std::string(exe),
                       absl::StrCat("--gtest_filter=", test_name),
                       absl::StrCat(kRankFlag, r),
                       absl::StrCat(kWorldFlag, world),
                       absl::StrCat(kPortFlag, port),
                       absl::StrCat(kCallFlag, call->second)};
    for (std::string& s : argv_strings[r]) argvs[r].push_back(s.data());
    argvs[r].push_back(nullptr);
  }
  const long max_fd = std::min<long>(sysconf(_SC_OPEN_MAX), 4096);

  std::fflush(nullptr);
  std::vector<pid_t> pids(world, -1);
  for (int r = 0; r < world; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      // Drop inherited sockets (the store's, other groups') so a rank
      // cannot keep the parent's connections alive.
      for (long fd = 3; fd < max_fd; ++fd) close(static_cast<int>(fd));
      execve(exe, argvs[r].data(), envp.data());
      _exit(127);
    }
    if (pid < 0) {
      for (int k = 0; k < r; ++k) kill(pids[k], SIGKILL);
      for (int k = 0; k < r; ++k) waitpid(pids[k], nullptr, 0);
      return absl::ResourceExhaustedError(
          absl::StrCat("RunRanks: fork failed: ", std::strerror(errno)));
    }
    pids[r] = pid;
  }

  const absl::Time deadline = absl::Now() + timeout;
  std::vector<std::string> outcome(world);
  int running = world;
  bool failed = false;
  bool timed_out = false;
  while (running > 0) {
    for (int r = 0; r < world; ++r) {
      if (pids[r] < 0) continue;
      int status = 0;
      if (waitpid(pids[r], &status, WNOHANG) == pids[r]) {
        pids[r] = -1;
        --running;
        outcome[r] = Describe(status);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = true;
      }
    }
    if (running == 0) break;
    // One failed rank leaves its peers waiting in a collective until the
    // Gloo timeout; stop them now so the test reports quickly.
    timed_out = absl::Now() > deadline;
    if (failed || timed_out) {
      for (int r = 0; r < world; ++r) {
        if (pids[r] < 0) continue;
        kill(pids[r], SIGKILL);
        waitpid(pids[r], nullptr, 0);
        pids[r] = -1;
        --running;
        outcome[r] = timed_out ? "killed at the deadline"
                               : "killed after another rank failed";
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  std::vector<std::string> parts;
  for (int r = 0; r < world; ++r) {
    parts.push_back(absl::StrCat("rank ", r, ": ", outcome[r]));
  }
  const std::string summary = absl::StrJoin(parts, "; ");
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat("RunRanks(", world, ") of ", test_name, " ran past ",
                     absl::FormatDuration(timeout), ": ", summary));
  }
  if (failed) {
    return absl::InternalError(absl::StrCat("RunRanks(", world, ") of ",
                                            test_name, " failed: ", summary));
  }
  return absl::OkStatus();
}

}  // namespace dserve::parallel::testing
