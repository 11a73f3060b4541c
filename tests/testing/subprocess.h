#ifndef DSERVE_TESTS_TESTING_SUBPROCESS_H_
#define DSERVE_TESTS_TESTING_SUBPROCESS_H_

// Child processes for the end-to-end tests: find a binary in the test's
// runfiles, start it (fork/exec), wait for it with a timeout, or run it to
// completion capturing its output.
//
// Ownership: a Subprocess owns its child. If the child is still running when
// the Subprocess is destroyed, its whole process group (the child and any
// workers it spawned) is killed with SIGKILL so a failing test leaves nothing
// behind.
// Thread-safety: a Subprocess is driven by one thread.
// Blocking: Wait/RunAndCapture block up to their timeout; Start does not.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dserve::tests {

// Absolute path of `workspace_relative` (e.g. "server/dserve_server") inside
// this test's runfiles, from TEST_SRCDIR or RUNFILES_DIR as Bazel sets them
// for tests. NOT_FOUND when neither is set or the file is not executable.
absl::StatusOr<std::string> RunfilePath(const std::string& workspace_relative);

// A directory private to this test (TEST_TMPDIR), or /tmp outside Bazel.
std::string TestTempDir();

class Subprocess {
 public:
  // Starts argv[0] (a path) with argv[1..] in a new process group. stdout and
  // stderr go to the given files when non-empty, else are inherited (they
  // then land in the test log).
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      const std::vector<std::string>& argv, const std::string& stdout_path = "",
      const std::string& stderr_path = "");

  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return !exited_; }

  // Sends `signal` to the child (not its group).
  absl::Status Signal(int signal);

  // Waits until the child exits and returns its exit code. A child killed by
  // a signal is INTERNAL naming the signal; still running after `timeout` is
  // DEADLINE_EXCEEDED (the child keeps running).
  absl::StatusOr<int> Wait(absl::Duration timeout);

  // Non-blocking: true once the child has exited (its status is kept for
  // Wait).
  bool Poll();

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}

  pid_t pid_;
  bool exited_ = false;
  int wait_status_ = 0;
};

struct CapturedRun {
  int exit_code = -1;
  std::string stdout_text;
  std::string stderr_text;
};

// Runs argv to completion with stdout/stderr captured through files in
// TestTempDir(). A run longer than `timeout` is killed and reported as
// DEADLINE_EXCEEDED.
absl::StatusOr<CapturedRun> RunAndCapture(const std::vector<std::string>& argv,
                                          absl::Duration timeout);

}  // namespace dserve::tests

#endif  // DSERVE_TESTS_TESTING_SUBPROCESS_H_
