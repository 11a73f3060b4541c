#include "server/stream_watchdog.h"

#include <algorithm>
#include <utility>

namespace dserve::server {

StreamWatchdog::StreamWatchdog(Options options, const scheduler::Clock* clock)
    : options_(std::move(options)), clock_(clock) {
  if (options_.run_thread && options_.timeout != absl::InfiniteDuration()) {
    thread_ = std::thread([this] { Loop(); });
  }
}

StreamWatchdog::~StreamWatchdog() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void StreamWatchdog::Register(StallableStream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.push_back(stream);
}

void StreamWatchdog::Unregister(StallableStream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(std::remove(streams_.begin(), streams_.end(), stream),
                 streams_.end());
}

int StreamWatchdog::CheckNow() {
  if (options_.timeout == absl::InfiniteDuration()) return 0;
  std::vector<std::function<void()>> actions;
  {
    const absl::Time now = clock_->Now();
    absl::MutexLock lock(&mu_);
    for (StallableStream* stream : streams_) {
      if (std::function<void()> action = stream->CheckStall(now, options_.timeout)) {
        actions.push_back(std::move(action));
      }
    }
  }
  for (const auto& action : actions) action();
  return static_cast<int>(actions.size());
}

void StreamWatchdog::Loop() {
  absl::Duration period = options_.period;
  if (period <= absl::ZeroDuration()) {
    period = std::min(absl::Seconds(1), options_.timeout / 4);
  }
  period = std::max(period, absl::Milliseconds(10));
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), period)) return;
    }
    CheckNow();
  }
}

}  // namespace dserve::server
