#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dserve::tests {
namespace {

std::string ReadWholeFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream data;
  data << file.rdbuf();
  return data.str();
}

}  // namespace

absl::StatusOr<std::string> RunfilePath(const std::string& workspace_relative) {
  std::vector<std::string> roots;
  for (const char* name : {"TEST_SRCDIR", "RUNFILES_DIR"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && value[0] != '\0') roots.push_back(value);
  }
  if (roots.empty()) {
    return absl::NotFoundError(
        "neither TEST_SRCDIR nor RUNFILES_DIR is set; run under bazel test");
  }
  std::vector<std::string> tried;
  for (const std::string& root : roots) {
    // Bazel 4 names the main repository's runfiles directory after the
    // workspace name; "__main__" is the default when WORKSPACE sets none.
    for (const char* workspace : {"__main__", "dserve"}) {
      std::string path = absl::StrCat(root, "/", workspace, "/",
                                      workspace_relative);
      if (access(path.c_str(), X_OK) == 0) return path;
      tried.push_back(std::move(path));
    }
  }
  return absl::NotFoundError(absl::StrCat(
      workspace_relative, " is not in the runfiles; tried ",
      absl::StrJoin(tried, ", "), " (add it to the test's data)"));
}

std::string TestTempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr && dir[0] != '\0' ? dir : "/tmp";
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::vector<std::string>& argv, const std::string& stdout_path,
    const std::string& stderr_path) {
  if (argv.empty()) return absl::InvalidArgumentError("argv is empty");
  // Everything the child touches is prepared before fork: between fork and
  // exec in a multi-threaded parent only async-signal-safe calls are allowed.
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  int out_fd = -1;
  int err_fd = -1;
  if (!stdout_path.empty()) {
    out_fd = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                  0644);
    if (out_fd < 0) {
      return absl::InternalError(absl::StrCat("open ", stdout_path, ": ",
                                              std::strerror(errno)));
    }
  }
  if (!stderr_path.empty()) {
    err_fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                  0644);
    if (err_fd < 0) {
      if (out_fd >= 0) close(out_fd);
      return absl::InternalError(absl::StrCat("open ", stderr_path, ": ",
                                              std::strerror(errno)));
    }
  }
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    setpgid(0, 0);
    // dup2 clears O_CLOEXEC on the new descriptor.
    if (out_fd >= 0) dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0) dup2(err_fd, STDERR_FILENO);
    // The test process may block signals in threads; the child starts clean.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    const char msg[] = "execv failed\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)ignored;
    _exit(127);
  }
  // Also set the group from the parent so a kill(-pid) right after Start
  // cannot race the child's own setpgid.
  setpgid(pid, pid);
  if (out_fd >= 0) close(out_fd);
  if (err_fd >= 0) close(err_fd);
  return std::unique_ptr<Subprocess>(new Subprocess(pid));
}

Subprocess::~Subprocess() {
  // Kill the group even after a clean exit: workers orphaned by a server
  // bug must not outlive the test.
  kill(-pid_, SIGKILL);
  if (!exited_) {
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

absl::Status Subprocess::Signal(int signal) {
  if (exited_) {
    return absl::FailedPreconditionError(
        absl::StrCat("process ", pid_, " already exited"));
  }
  if (kill(pid_, signal) != 0) {
    return absl::InternalError(
        absl::StrCat("kill(", pid_, ", ", signal, "): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

bool Subprocess::Poll() {
  if (exited_) return true;
  int status = 0;
  const pid_t got = waitpid(pid_, &status, WNOHANG);
  if (got == pid_) {
    exited_ = true;
    wait_status_ = status;
  }
  return exited_;
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!Poll()) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "process ", pid_, " still running after ",
          absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (WIFEXITED(wait_status_)) return WEXITSTATUS(wait_status_);
  if (WIFSIGNALED(wait_status_)) {
    return absl::InternalError(
        absl::StrCat("process ", pid_, " was killed by signal ",
                     WTERMSIG(wait_status_), " (",
                     strsignal(WTERMSIG(wait_status_)), ")"));
  }
  return absl::InternalError(
      absl::StrCat("process ", pid_, " ended with wait status ", wait_status_));
}

absl::StatusOr<CapturedRun> RunAndCapture(const std::vector<std::string>& argv,
                                          absl::Duration timeout) {
  static std::atomic<int> counter{0};
  const std::string prefix = absl::StrCat(TestTempDir(), "/run_", getpid(),
                                          "_", counter.fetch_add(1));
  const std::string out_path = prefix + ".stdout";
  const std::string err_path = prefix + ".stderr";
  auto child = Subprocess::Start(argv, out_path, err_path);
  if (!child.ok()) return child.status();
  absl::StatusOr<int> code = (*child)->Wait(timeout);
  if (!code.ok()) {
    return absl::Status(code.status().code(),
                        absl::StrCat(code.status().message(), "; stderr: ",
                                     ReadWholeFile(err_path)));
  }
  CapturedRun run;
  run.exit_code = *code;
  run.stdout_text = ReadWholeFile(out_path);
  run.stderr_text = ReadWholeFile(err_path);
  return run;
}

}  // namespace dserve::tests
