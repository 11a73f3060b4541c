#ifndef DSERVE_SCHEDULER_TESTING_FAKE_CLOCK_H_
#define DSERVE_SCHEDULER_TESTING_FAKE_CLOCK_H_

// A Clock that only moves when a test advances it. Thread-safe; never blocks.

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/clock.h"

namespace dserve::scheduler::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000))
      : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dserve::scheduler::testing

#endif  // DSERVE_SCHEDULER_TESTING_FAKE_CLOCK_H_
