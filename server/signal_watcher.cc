#include "server/signal_watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dserve::server {
namespace {

// Write end of the self-pipe for the handler (see the header for why this
// is process-wide). -1 when no watcher exists.
std::atomic<int> g_signal_pipe_write_fd{-1};

void HandleSignal(int signo) {
  const int saved_errno = errno;
  const int fd = g_signal_pipe_write_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    const unsigned char byte = static_cast<unsigned char>(signo);
    // Non-blocking: if the pipe is full, the watcher already has plenty of
    // signals to act on.
    ssize_t ignored = write(fd, &byte, 1);
    (void)ignored;
  }
  errno = saved_errno;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SignalWatcher>> SignalWatcher::Start(
    std::vector<int> signals, std::function<void(int)> on_signal) {
  int signal_pipe[2];
  if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot create the signal pipe: ", std::strerror(errno)));
  }
  int stop_pipe[2];
  if (pipe2(stop_pipe, O_CLOEXEC) != 0) {
    const int err = errno;
    close(signal_pipe[0]);
    close(signal_pipe[1]);
    return absl::InternalError(
        absl::StrCat("cannot create the stop pipe: ", std::strerror(err)));
  }
  int expected = -1;
  if (!g_signal_pipe_write_fd.compare_exchange_strong(expected,
                                                      signal_pipe[1])) {
    for (int fd : {signal_pipe[0], signal_pipe[1], stop_pipe[0], stop_pipe[1]}) {
      close(fd);
    }
    return absl::FailedPreconditionError(
        "a SignalWatcher already exists in this process (only one may)");
  }
  auto watcher = std::unique_ptr<SignalWatcher>(
      new SignalWatcher(std::move(signals), std::move(on_signal),
                        signal_pipe[0], stop_pipe[0], stop_pipe[1]));
  watcher->thread_ = std::thread([w = watcher.get()] { w->Watch(); });
  for (int signo : watcher->signals_) {
    struct sigaction action;
    std::memset(&action, 0, sizeof(action));
    action.sa_handler = HandleSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    struct sigaction previous;
    if (sigaction(signo, &action, &previous) != 0) {
      return absl::InternalError(absl::StrCat("sigaction(", signo,
                                              "): ", std::strerror(errno)));
    }
    watcher->previous_.push_back(previous);
  }
  return watcher;
}

SignalWatcher::SignalWatcher(std::vector<int> signals,
                             std::function<void(int)> on_signal, int read_fd,
                             int stop_read_fd, int stop_write_fd)
    : signals_(std::move(signals)),
      on_signal_(std::move(on_signal)),
      read_fd_(read_fd),
      stop_read_fd_(stop_read_fd),
      stop_write_fd_(stop_write_fd) {}

SignalWatcher::~SignalWatcher() {
  for (size_t i = 0; i < previous_.size(); ++i) {
    sigaction(signals_[i], &previous_[i], nullptr);
  }
  const int write_fd = g_signal_pipe_write_fd.exchange(-1);
  close(stop_write_fd_);
  if (thread_.joinable()) thread_.join();
  close(stop_read_fd_);
  close(read_fd_);
  if (write_fd >= 0) close(write_fd);
}

void SignalWatcher::Watch() {
  while (true) {
    struct pollfd fds[2] = {{read_fd_, POLLIN, 0}, {stop_read_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    unsigned char byte;
    while (read(read_fd_, &byte, 1) == 1) on_signal_(byte);
    if (fds[1].revents != 0) return;  // The destructor asked to stop.
  }
}

}  // namespace dserve::server
