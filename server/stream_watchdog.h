#ifndef DSERVE_SERVER_STREAM_WATCHDOG_H_
#define DSERVE_SERVER_STREAM_WATCHDOG_H_

// StreamWatchdog: the slow-consumer policy of the server's streams. A
// stream (JobEventWriter) registers itself; the watchdog asks every stream,
// every `period`, whether one write has been waiting for the client longer
// than `timeout` (--watcher_write_timeout_s). Such a stream hands back an
// action that ends its call with RESOURCE_EXHAUSTED; the watchdog runs the
// actions after releasing every lock, so ending a call never blocks the
// scheduler, health checks or other streams, and a stream's reactions may
// run inline.
//
// Owns one thread (unless Options::run_thread is false: tests call
// CheckNow). Does not own the streams or the clock (the clock must outlive
// it). Thread-safe. Register/Unregister block only for one check pass;
// after Unregister returns the stream is never called again.

#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/clock.h"

namespace dserve::server {

class StallableStream {
 public:
  virtual ~StallableStream() = default;
  // Called with the watchdog's lock held: must not block or call back into
  // the watchdog. Returns an action that ends the stream (run later,
  // without locks, and while the stream may already be gone: the action
  // must keep alive what it needs), or an empty function.
  virtual std::function<void()> CheckStall(absl::Time now,
                                           absl::Duration timeout) = 0;
};

class StreamWatchdog {
 public:
  struct Options {
    // A write pending this long ends its stream; infinite = never.
    absl::Duration timeout = absl::InfiniteDuration();
    // How often streams are checked; zero = timeout/4, at most 1 s.
    absl::Duration period = absl::ZeroDuration();
    bool run_thread = true;
  };

  StreamWatchdog(Options options, const scheduler::Clock* clock);
  ~StreamWatchdog();
  StreamWatchdog(const StreamWatchdog&) = delete;
  StreamWatchdog& operator=(const StreamWatchdog&) = delete;

  absl::Duration timeout() const { return options_.timeout; }

  void Register(StallableStream* stream);
  void Unregister(StallableStream* stream);

  // One pass: asks every stream, then runs the actions. Returns how many
  // streams were ended.
  int CheckNow();

 private:
  void Loop();

  const Options options_;
  const scheduler::Clock* const clock_;

  absl::Mutex mu_;
  std::vector<StallableStream*> streams_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dserve::server

#endif  // DSERVE_SERVER_STREAM_WATCHDOG_H_
