#ifndef DSERVE_SERVER_SIGNAL_WATCHER_H_
#define DSERVE_SERVER_SIGNAL_WATCHER_H_

// SignalWatcher: turns SIGTERM/SIGINT into an ordinary callback on a thread
// of its own.
//
// sigaction + a self-pipe, not sigwait: sigwait needs the signals blocked in
// every thread, and libraries (OpenBLAS, gRPC) start threads before main
// can block anything. The handler only write()s the signal number to the
// pipe (async-signal-safe); the watcher thread reads it and calls
// `on_signal` there, where any code may run.
//
// A signal handler cannot carry state, so the pipe's write end lives in one
// process-wide variable: at most one SignalWatcher may exist at a time
// (Start returns FAILED_PRECONDITION otherwise).
//
// Owns both pipes and the thread; the destructor restores the previous
// handlers and joins the thread. The callback runs on the watcher thread,
// one signal at a time; it must not destroy the watcher.

#include <signal.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace dserve::server {

class SignalWatcher {
 public:
  static absl::StatusOr<std::unique_ptr<SignalWatcher>> Start(
      std::vector<int> signals, std::function<void(int)> on_signal);

  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  SignalWatcher(std::vector<int> signals, std::function<void(int)> on_signal,
                int read_fd, int stop_read_fd, int stop_write_fd);
  void Watch();

  const std::vector<int> signals_;
  const std::function<void(int)> on_signal_;
  std::vector<struct sigaction> previous_;
  // Read end of the self-pipe.
  const int read_fd_;
  // A second pipe: the destructor closes its write end, which wakes the
  // watcher thread with EOF and ends it.
  const int stop_read_fd_;
  const int stop_write_fd_;
  std::thread thread_;
};

}  // namespace dserve::server

#endif  // DSERVE_SERVER_SIGNAL_WATCHER_H_
