#include "scheduler/worker_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dserve::scheduler {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

// close_range(2) over [first, last]; true when done (or nothing to do).
bool CloseRange(int first, int last) {
  if (first > last) return true;
#ifdef SYS_close_range
  return syscall(SYS_close_range, static_cast<unsigned>(first),
                 static_cast<unsigned>(last), 0u) == 0;
#else
  return false;
#endif
}

// Closes every descriptor >= 3 except `keep_a` and `keep_b`. Runs in the
// forked child, so only async-signal-safe calls.
void CloseInheritedFds(int keep_a, int keep_b) {
  const int lo = std::min(keep_a, keep_b);
  const int hi = std::max(keep_a, keep_b);
  if (CloseRange(3, lo - 1) && CloseRange(lo + 1, hi - 1) &&
      CloseRange(hi + 1, 0x7fffffff)) {
    return;
  }
  struct rlimit limit;
  int max_fd = 65536;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    max_fd = static_cast<int>(std::min<rlim_t>(limit.rlim_cur, 1 << 20));
  }
  for (int fd = 3; fd < max_fd; ++fd) {
    if (fd != keep_a && fd != keep_b) close(fd);
  }
}

}  // namespace

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return absl::StrCat("exited with status ", WEXITSTATUS(wait_status));
  }
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    const char* name = strsignal(sig);
    return absl::StrCat("was killed by signal ", sig, " (",
                        name != nullptr ? name : "unknown", ")");
  }
  return absl::StrCat("ended with wait status ", wait_status);
}

absl::StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Spawn(
    const std::string& binary, std::vector<std::string> args,
    bool with_ready_pipe, std::vector<std::string> extra_env) {
  int ready[2] = {-1, -1};
  if (with_ready_pipe && pipe2(ready, O_CLOEXEC) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot create the ready pipe for ", binary, ": ",
                     ErrnoText(errno)));
  }
  // exec failures come back through this pipe: it closes on a successful
  // exec (O_CLOEXEC), or carries the child's errno.
  int exec_error[2];
  if (pipe2(exec_error, O_CLOEXEC) != 0) {
    const int err = errno;
    if (with_ready_pipe) {
      close(ready[0]);
      close(ready[1]);
    }
    return absl::InternalError(absl::StrCat(
        "cannot create the exec-status pipe for ", binary, ": ", ErrnoText(err)));
  }
  args.push_back(absl::StrCat("--ready_fd=", with_ready_pipe ? ready[1] : -1));

  // Everything the child needs is built before fork: after fork only
  // async-signal-safe calls are allowed (the server is multi-threaded).
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // The child's environment: ours, minus the names extra_env sets, plus
  // extra_env.
  std::vector<char*> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const absl::string_view entry(*e);
    const bool replaced = std::any_of(
        extra_env.begin(), extra_env.end(), [entry](const std::string& x) {
          const size_t eq = x.find('=');
          return eq != std::string::npos &&
                 absl::StartsWith(entry, absl::string_view(x).substr(0, eq + 1));
        });
    if (!replaced) envp.push_back(*e);
  }
  for (std::string& entry : extra_env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(exec_error[0]);
    close(exec_error[1]);
    if (with_ready_pipe) {
      close(ready[0]);
      close(ready[1]);
    }
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot fork to start ", binary, ": ", ErrnoText(err)));
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent may have died between fork and prctl.
    if (getppid() != parent) _exit(127);
    if (with_ready_pipe) {
      // The write end must survive exec.
      const int flags = fcntl(ready[1], F_GETFD);
      fcntl(ready[1], F_SETFD, flags & ~FD_CLOEXEC);
    }
    CloseInheritedFds(with_ready_pipe ? ready[1] : exec_error[1],
                      exec_error[1]);
    // Restore default signal handling (the server's handlers and masks are
    // not the worker's business).
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    execve(binary.c_str(), argv.data(), envp.data());
    const int err = errno;
    ssize_t ignored = write(exec_error[1], &err, sizeof(err));
    (void)ignored;
    _exit(127);
  }

  close(exec_error[1]);
  if (with_ready_pipe) close(ready[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(exec_error[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close(exec_error[0]);
  auto process = std::unique_ptr<WorkerProcess>(
      new WorkerProcess(pid, with_ready_pipe ? ready[0] : -1));
  if (n == static_cast<ssize_t>(sizeof(child_errno))) {
    process->WaitFor(absl::Seconds(5));
    return absl::FailedPreconditionError(
        absl::StrCat("cannot execute worker binary ", binary, ": ",
                     ErrnoText(child_errno),
                     " (set --worker_binary to the dserve_worker path)"));
  }
  return process;
}

WorkerProcess::~WorkerProcess() {
  if (!Poll().has_value()) {
    Signal(SIGKILL);
    WaitFor(absl::Seconds(5));
  }
  if (ready_fd_ >= 0) close(ready_fd_);
}

absl::StatusOr<std::string> WorkerProcess::ReadLine(absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (true) {
    const size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    if (ready_fd_ < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("process ", pid_, " has no ready pipe"));
    }
    if (std::optional<std::string> how = Poll()) {
      // Drain what it wrote before dying; a complete line still counts.
      char chunk[256];
      ssize_t n;
      while ((n = read(ready_fd_, chunk, sizeof(chunk))) > 0) {
        buffer_.append(chunk, n);
      }
      if (buffer_.find('\n') != std::string::npos) continue;
      return absl::UnavailableError(
          absl::StrCat("process ", pid_, " ", *how, " before it was ready"));
    }
    const absl::Duration left = give_up - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "process ", pid_, " did not report ready within ",
          absl::FormatDuration(timeout)));
    }
    struct pollfd pfd = {ready_fd_, POLLIN, 0};
    // Short slices, so a child that dies without closing the pipe (a
    // grandchild holding it) is noticed by Poll above.
    const int slice_ms = static_cast<int>(
        std::min<int64_t>(100, absl::ToInt64Milliseconds(left) + 1));
    const int ready = poll(&pfd, 1, slice_ms);
    if (ready < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat(
          "poll on the ready pipe of process ", pid_, ": ", ErrnoText(errno)));
    }
    if (ready <= 0) continue;
    char chunk[256];
    const ssize_t n = read(ready_fd_, chunk, sizeof(chunk));
    if (n > 0) {
      buffer_.append(chunk, n);
    } else if (n == 0) {
      // EOF: the child closed the pipe (or exited). Wait briefly for the
      // exit so the message can say how it ended.
      std::optional<std::string> how = WaitFor(absl::Milliseconds(500));
      close(ready_fd_);
      ready_fd_ = -1;
      if (buffer_.find('\n') != std::string::npos) continue;
      return absl::UnavailableError(absl::StrCat(
          "process ", pid_, " closed its ready pipe",
          how.has_value() ? absl::StrCat(" and ", *how) : std::string()));
    }
  }
}

bool WorkerProcess::DrainPipe() {
  while (ready_fd_ >= 0) {
    struct pollfd pfd = {ready_fd_, POLLIN, 0};
    const int ready = poll(&pfd, 1, 0);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    char chunk[256];
    const ssize_t n = read(ready_fd_, chunk, sizeof(chunk));
    if (n > 0) {
      buffer_.append(chunk, n);
    } else if (n == 0 || errno != EINTR) {
      close(ready_fd_);
      ready_fd_ = -1;
      return true;
    }
  }
  return false;
}

absl::StatusOr<std::optional<std::string>> WorkerProcess::TryReadLine() {
  if (ready_fd_ < 0 && buffer_.find('\n') == std::string::npos &&
      !closed_seen_) {
    return absl::FailedPreconditionError(
        absl::StrCat("process ", pid_, " has no ready pipe"));
  }
  const bool closed_now = DrainPipe();
  const size_t newline = buffer_.find('\n');
  if (newline != std::string::npos) {
    std::string line = buffer_.substr(0, newline);
    buffer_.erase(0, newline + 1);
    if (closed_now) closed_seen_ = true;
    return std::optional<std::string>(std::move(line));
  }
  if (closed_now || closed_seen_) {
    closed_seen_ = true;
    // EOF: the child closed the pipe (or exited). Wait briefly for the
    // exit so the message can say how it ended.
    std::optional<std::string> how = WaitFor(absl::Milliseconds(500));
    return absl::UnavailableError(absl::StrCat(
        "process ", pid_, " closed its ready pipe",
        how.has_value() ? absl::StrCat(" and ", *how) : std::string()));
  }
  if (std::optional<std::string> how = Poll()) {
    // Dead without closing the pipe (a grandchild holds it).
    return absl::UnavailableError(
        absl::StrCat("process ", pid_, " ", *how, " before it was ready"));
  }
  return std::optional<std::string>();
}

void WorkerProcess::Signal(int signal) {
  if (!exit_description_.has_value()) kill(pid_, signal);
}

std::optional<std::string> WorkerProcess::Poll() {
  if (exit_description_.has_value()) return exit_description_;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_description_ = DescribeWaitStatus(status);
  } else if (r < 0 && errno == ECHILD) {
    exit_description_ = "was reaped elsewhere";
  }
  return exit_description_;
}

std::optional<std::string> WorkerProcess::WaitFor(absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (!Poll().has_value() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  return exit_description_;
}

}  // namespace dserve::scheduler
