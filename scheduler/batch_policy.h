#ifndef DSERVE_SCHEDULER_BATCH_POLICY_H_
#define DSERVE_SCHEDULER_BATCH_POLICY_H_

// Batch policy: which queued jobs run together as one plan, and whether to
// dispatch now or wait for more compatible jobs.
//
// Pure function over a snapshot of the queue; owns nothing; thread-safe;
// never blocks.
//
// The head job is chosen by the queue's own order (priority, then arrival,
// with aging; PickNextJob in queue_aging.h), so batching never lets a job
// jump ahead of the job that would have run anyway: it only lets compatible
// jobs further back ride along with the head.

#include <cstddef>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::scheduler {

// One queued job as the policy sees it. `request` is the effective request
// and must outlive the call.
struct BatchCandidate {
  int priority = 0;
  int64_t sequence = 0;
  absl::Time create_time = absl::InfinitePast();
  const dserve::v1::GenerateRequest* request = nullptr;
  // Never batched (Job::run_alone: its earlier batch failed as a whole).
  bool run_alone = false;
};

struct BatchDecision {
  // Indices into the snapshot: the head first, then its companions in queue
  // order. Empty only when the snapshot is empty.
  std::vector<size_t> members;
  // True: dispatch `members` now. False: wait until `wait_until` (or until a
  // new job arrives) and decide again.
  bool dispatch_now = false;
  absl::Time wait_until = absl::InfinitePast();
};

// `queue` is in queue order (RequestQueue::Snapshot). Picks the head with
// PickNextJob(now, max_age), then up to `max_batch` - 1 more jobs whose
// requests CanBatch with the head's, in queue order. Dispatches now when the
// batch is full, when `max_batch` <= 1, or when the head has waited (since
// create_time) at least `batch_wait`; otherwise waits until the head's
// create_time + batch_wait. A `run_alone` head is dispatched alone at once;
// a `run_alone` job never rides along.
BatchDecision DecideBatch(const std::vector<BatchCandidate>& queue,
                          absl::Time now, absl::Duration max_age,
                          int max_batch, absl::Duration batch_wait);

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_BATCH_POLICY_H_
