#ifndef DSERVE_SCHEDULER_CLOCK_H_
#define DSERVE_SCHEDULER_CLOCK_H_

// The time source of the frontend tier, injected so tests control time
// (queue deadlines, job timings, eviction ages) without sleeping.
//
// Implementations must be thread-safe; Now() never blocks.

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dserve::scheduler {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// Wall-clock time (absl::Now). Stateless; one instance may be shared freely.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_CLOCK_H_
