#ifndef DSERVE_SCHEDULER_RESTART_POLICY_H_
#define DSERVE_SCHEDULER_RESTART_POLICY_H_

// When a crashed replica starts again: a pure function of the policy, what
// the replica did so far and the crash, so it is tested as a table
// (restart_policy_test.cc) and the supervisor only applies the verdict.
//
//  * A replica that never became READY stays FAILED: its first start-up
//    failing means bad flags or a bad model, which a restart does not fix.
//  * Otherwise the back-off doubles with each crash in a row (backoff, 2x,
//    4x ... capped at backoff_max). A replica that was healthy for at least
//    backoff_max before it crashed starts over at `backoff`.
//  * max_crashes_in_a_row > 0 gives up after that many crashes in a row
//    (a restart storm): the replica stays FAILED and the verdict says why.
//
// Value types and a free function; no state, no clock, thread-compatible.

#include <string>

#include "absl/time/time.h"

namespace dserve::scheduler {

struct RestartPolicy {
  // False: every crash leaves the replica FAILED.
  bool restart = true;
  absl::Duration backoff = absl::Seconds(1);
  absl::Duration backoff_max = absl::Seconds(30);
  // 0 = no limit.
  int max_crashes_in_a_row = 0;
};

// What the supervisor remembers across restarts of one replica.
struct RestartHistory {
  // The replica reached READY at least once since it was created.
  bool ever_ready = false;
  // Crashes since the replica was last healthy for backoff_max.
  int crashes_in_a_row = 0;
};

struct RestartVerdict {
  // False: stay FAILED; `why_not` says why.
  bool restart = false;
  // Start again at this time (crashed_at + backoff).
  absl::Time restart_at = absl::InfiniteFuture();
  absl::Duration backoff = absl::ZeroDuration();
  // The history after this crash (crashes_in_a_row counts it).
  RestartHistory history;
  std::string why_not;
};

// The verdict for a crash at `crashed_at` of a start that became READY at
// `ready_at` (absl::InfiniteFuture() when this start never did).
RestartVerdict DecideRestart(const RestartPolicy& policy,
                             const RestartHistory& history,
                             absl::Time ready_at, absl::Time crashed_at);

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_RESTART_POLICY_H_
