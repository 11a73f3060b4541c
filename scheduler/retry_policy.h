#ifndef DSERVE_SCHEDULER_RETRY_POLICY_H_
#define DSERVE_SCHEDULER_RETRY_POLICY_H_

// Whether a job whose plan failed runs again: a pure function of a snapshot,
// tested as a table (retry_policy_test.cc).
//
// A plan that ended UNAVAILABLE lost its replica (a rank died, or the
// replica stopped under it). Its jobs run once more, on whichever replica
// is READY first (the restarted one, or another), with the same effective
// request and seed, so the same output. Never twice (a job that kills
// replicas must not take them all down in turn), never after the job was
// cancelled or its deadline passed (nobody waits for the result), never
// when no replica is left to run it.
//
// Value type and a free function; no state, no clock, thread-compatible.

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace dserve::scheduler {

struct RetrySnapshot {
  // How the plan ended.
  absl::Status status;
  // The job was cancelled (by its client or the scheduler).
  bool cancelled = false;
  // Retries the job had so far.
  int retries = 0;
  // The job's deadline (absl::InfiniteFuture() = none) and the time now.
  absl::Time deadline = absl::InfiniteFuture();
  absl::Time now;
  // Every replica is FAILED for good (none restarts by itself): nothing
  // could run the retry (Scheduler::NoReplicaLeft).
  bool no_replica_left = false;
};

inline constexpr int kMaxRetries = 1;

bool ShouldRetry(const RetrySnapshot& snapshot);

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_RETRY_POLICY_H_
