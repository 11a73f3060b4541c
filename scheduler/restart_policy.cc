#include "scheduler/restart_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace dserve::scheduler {

RestartVerdict DecideRestart(const RestartPolicy& policy,
                             const RestartHistory& history,
                             absl::Time ready_at, absl::Time crashed_at) {
  RestartVerdict verdict;
  verdict.history = history;
  if (!history.ever_ready) {
    verdict.why_not =
        "it never became READY (a first start-up that fails is not retried)";
    return verdict;
  }
  if (!policy.restart) {
    verdict.why_not = "restarts are off";
    return verdict;
  }
  if (ready_at != absl::InfiniteFuture() &&
      crashed_at - ready_at >= policy.backoff_max) {
    verdict.history.crashes_in_a_row = 0;
  }
  const int crashes = ++verdict.history.crashes_in_a_row;
  if (policy.max_crashes_in_a_row > 0 &&
      crashes > policy.max_crashes_in_a_row) {
    verdict.why_not = absl::StrCat(
        "it crashed ", crashes, " times in a row (limit ",
        policy.max_crashes_in_a_row, ", none after a healthy ",
        absl::FormatDuration(policy.backoff_max), ")");
    return verdict;
  }
  absl::Duration backoff = policy.backoff;
  for (int i = 1; i < crashes && backoff < policy.backoff_max; ++i) {
    backoff *= 2;
  }
  verdict.backoff = std::min(backoff, policy.backoff_max);
  verdict.restart = true;
  verdict.restart_at = crashed_at + verdict.backoff;
  return verdict;
}

}  // namespace dserve::scheduler
