#ifndef DSERVE_SCHEDULER_QUEUE_AGING_H_
#define DSERVE_SCHEDULER_QUEUE_AGING_H_

// Which queued job runs next, with anti-starvation aging: a pure function
// of a snapshot of the queue, so the order can be tested as a table.
// Holds no state; thread-safe; never blocks.

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/time/time.h"

namespace dserve::scheduler {

// What the policy may look at for one queued job.
struct QueuedJobSnapshot {
  int priority = 0;
  // Arrival order (Job::sequence); unique within a queue.
  int64_t sequence = 0;
  // When the job was created (Job::create_time).
  absl::Time create_time = absl::InfinitePast();
};

// Returns the index in `queue` of the job to run next, or nullopt when
// `queue` is empty.
//
// Without aging (`max_age` <= 0 or infinite) this is the plain order:
// highest priority first, then arrival (lowest sequence). With aging, a job
// that has waited at least `max_age` at `now` is promoted above every
// priority, so a steady stream of high-priority work cannot hold a
// low-priority job back for longer than `max_age` plus the time to free a
// replica; promoted jobs run among themselves in arrival order (the
// longest-waiting first), which is what bounds each one's wait.
std::optional<size_t> PickNextJob(const std::vector<QueuedJobSnapshot>& queue,
                                  absl::Time now, absl::Duration max_age);

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_QUEUE_AGING_H_
