#ifndef DSERVE_SCHEDULER_WORKER_PROCESS_H_
#define DSERVE_SCHEDULER_WORKER_PROCESS_H_

// WorkerProcess: one child process (a dserve_worker rank) started with
// fork/exec, plus the read end of its "ready pipe".
//
// The child, before exec, moves into its own process group (a terminal's
// Ctrl-C reaches only the server, which drains and then stops its workers),
// asks for SIGKILL when its parent dies (PR_SET_PDEATHSIG), and closes every
// inherited descriptor except the pipe. PR_SET_PDEATHSIG fires when the
// *thread* that forked exits, so spawn from a thread that lives as long as
// the child (the replica's supervisor thread).
//
// Owns the child until it is reaped: the destructor SIGKILLs and reaps a
// child that is still running, so no zombie outlives the object.
// Not thread-safe: one owner thread calls everything, except pid() (const
// after Spawn). ReadLine and WaitFor block up to their timeout; TryReadLine
// and Poll never block. The replica Supervisor drives it as a ChildProcess
// (worker_launcher.h).

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scheduler/worker_launcher.h"

namespace dserve::scheduler {

class WorkerProcess final : public ChildProcess {
 public:
  // Starts `binary` with `args` (argv[1..]). With `with_ready_pipe`, the
  // child gets a pipe's write end and "--ready_fd=<fd>" is appended;
  // otherwise "--ready_fd=-1" is. `extra_env` ("NAME=value" entries) is
  // added to (or replaces the same names in) this process's environment
  // for the child: the way to hand it a secret, which on the command line
  // every local user could read in /proc/PID/cmdline (environ is readable
  // by the owner only). Fails (naming the binary and errno) when the pipe,
  // fork or exec fails.
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Spawn(
      const std::string& binary, std::vector<std::string> args,
      bool with_ready_pipe, std::vector<std::string> extra_env = {});

  ~WorkerProcess() override;
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  int pid() const override { return pid_; }

  // Next '\n'-terminated line from the ready pipe, without the newline.
  // DEADLINE_EXCEEDED after `timeout`; UNAVAILABLE when the child exits or
  // closes the pipe first (the message says how it ended).
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout);

  // ChildProcess: the next line if one arrived, without waiting (the same
  // messages as ReadLine when the pipe closed or the child ended).
  absl::StatusOr<std::optional<std::string>> TryReadLine() override;

  // Sends `signal` to the child if it still runs.
  void Signal(int signal) override;

  // Non-blocking reap. Once the child has ended, returns how ("exited with
  // status 1", "was killed by signal 9 (Killed)"), on this and every later
  // call.
  std::optional<std::string> Poll() override;

  // Waits up to `timeout` for the child to end; returns Poll().
  std::optional<std::string> WaitFor(absl::Duration timeout) override;

 private:
  WorkerProcess(pid_t pid, int ready_fd) : pid_(pid), ready_fd_(ready_fd) {}
  // Reads what the pipe holds now into buffer_; closes it at EOF (true).
  bool DrainPipe();

  const pid_t pid_;
  int ready_fd_;  // -1 when there is no pipe (or it was closed).
  std::string buffer_;
  // TryReadLine saw the pipe's end.
  bool closed_seen_ = false;
  std::optional<std::string> exit_description_;
};

// "exited with status N" / "was killed by signal N (name)" for a waitpid
// status.
std::string DescribeWaitStatus(int wait_status);

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_WORKER_PROCESS_H_
