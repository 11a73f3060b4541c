#include "scheduler/retry_policy.h"

namespace dserve::scheduler {

bool ShouldRetry(const RetrySnapshot& s) {
  return absl::IsUnavailable(s.status) && !s.cancelled &&
         s.retries < kMaxRetries && s.now < s.deadline &&
         !s.no_replica_left;
}

}  // namespace dserve::scheduler
