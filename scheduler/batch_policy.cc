#include "scheduler/batch_policy.h"

#include "scheduler/plan_builder.h"
#include "scheduler/queue_aging.h"

namespace dserve::scheduler {

BatchDecision DecideBatch(const std::vector<BatchCandidate>& queue,
                          absl::Time now, absl::Duration max_age,
                          int max_batch, absl::Duration batch_wait) {
  BatchDecision decision;
  if (queue.empty()) return decision;
  std::vector<QueuedJobSnapshot> order;
  order.reserve(queue.size());
  for (const BatchCandidate& c : queue) {
    order.push_back({c.priority, c.sequence, c.create_time});
  }
  const size_t head = PickNextJob(order, now, max_age).value_or(0);
  decision.members.push_back(head);
  if (queue[head].run_alone) {
    decision.dispatch_now = true;
    decision.wait_until = now;
    return decision;
  }
  const size_t limit = max_batch < 1 ? 1 : static_cast<size_t>(max_batch);
  for (size_t i = 0; i < queue.size() && decision.members.size() < limit;
       ++i) {
    if (i == head || queue[i].run_alone) continue;
    if (CanBatch(*queue[head].request, *queue[i].request)) {
      decision.members.push_back(i);
    }
  }
  const absl::Time wait_until = queue[head].create_time + batch_wait;
  decision.dispatch_now =
      decision.members.size() >= limit || now >= wait_until;
  decision.wait_until = decision.dispatch_now ? now : wait_until;
  return decision;
}

}  // namespace dserve::scheduler
