#include "scheduler/queue_aging.h"

#include <tuple>

namespace dserve::scheduler {

std::optional<size_t> PickNextJob(const std::vector<QueuedJobSnapshot>& queue,
                                  absl::Time now, absl::Duration max_age) {
  if (queue.empty()) return std::nullopt;
  const bool aging = max_age > absl::ZeroDuration() &&
                     max_age != absl::InfiniteDuration();
  auto aged = [&](const QueuedJobSnapshot& job) {
    return aging && now - job.create_time >= max_age;
  };
  // Smaller key runs first: aged jobs, then by priority (descending), then
  // by arrival. Aged jobs ignore priority so the oldest of them goes first.
  auto key = [&](const QueuedJobSnapshot& job) {
    const bool promoted = aged(job);
    return std::make_tuple(promoted ? 0 : 1, promoted ? 0 : -job.priority,
                           job.sequence);
  };
  size_t best = 0;
  for (size_t i = 1; i < queue.size(); ++i) {
    if (key(queue[i]) < key(queue[best])) best = i;
  }
  return best;
}

}  // namespace dserve::scheduler
