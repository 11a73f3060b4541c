#ifndef DSERVE_SCHEDULER_REQUEST_QUEUE_H_
#define DSERVE_SCHEDULER_REQUEST_QUEUE_H_

// RequestQueue: the bounded admission queue of the frontend.
//
// Order: higher priority first; equal priorities in arrival order (FIFO by
// Job::sequence). Owns shared references to the queued jobs; a job leaves
// the queue by Pop (dispatch), Remove (cancel), ExtractExpired (deadline) or
// RemoveAll (drain).
//
// Thread-safe (one absl::Mutex). No call blocks. Push tells the job its
// position (Job::MarkQueued) under the queue's lock, so a job's Queued event
// always precedes its Started event.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/job.h"

namespace dserve::scheduler {

class RequestQueue {
 public:
  // `capacity` >= 1: the most jobs that may wait at once.
  explicit RequestQueue(int capacity);

  // Admits `job`. Returns its position (jobs ahead of it, 0 = next), or
  // RESOURCE_EXHAUSTED when the queue is full, or ALREADY_EXISTS if a job
  // with the same id is queued.
  absl::StatusOr<int> Push(std::shared_ptr<Job> job);

  // Removes and returns the job to run next; nullptr when empty.
  std::shared_ptr<Job> Pop();

  // Like Pop, but a job that has waited at least `max_age` at `now` is
  // promoted above every priority (PickNextJob in queue_aging.h), so low
  // priority is not starved. `max_age` <= 0 is plain Pop order.
  std::shared_ptr<Job> PopNext(absl::Time now, absl::Duration max_age);

  // Removes the job with `job_id`; nullptr when it is not queued.
  std::shared_ptr<Job> Remove(const std::string& job_id);

  // Jobs ahead of `job_id` (0 = next), or nullopt when it is not queued.
  std::optional<int> Position(const std::string& job_id) const;

  // Removes and returns every job whose deadline is at or before `now`.
  std::vector<std::shared_ptr<Job>> ExtractExpired(absl::Time now);

  // Removes and returns every job for which Job::cancel_reason() is set.
  std::vector<std::shared_ptr<Job>> ExtractCancelled();

  // Every queued job, in queue order, left in the queue (the batch policy
  // reads it, then takes its picks out with Remove).
  std::vector<std::shared_ptr<Job>> Snapshot() const;

  // Removes and returns all jobs, in queue order.
  std::vector<std::shared_ptr<Job>> RemoveAll();

  // Earliest deadline among queued jobs, if any (the scheduler sleeps until
  // then).
  std::optional<absl::Time> NextDeadline() const;

  int size() const;
  int capacity() const { return capacity_; }

 private:
  // (−priority, sequence): std::map's ascending order is then the run order.
  using Key = std::pair<int, int64_t>;
  static Key KeyOf(const Job& job) { return {-job.priority(), job.sequence()}; }

  const int capacity_;
  mutable absl::Mutex mu_;
  std::map<Key, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Key> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_REQUEST_QUEUE_H_
