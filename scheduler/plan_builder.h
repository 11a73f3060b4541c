#ifndef DSERVE_SCHEDULER_PLAN_BUILDER_H_
#define DSERVE_SCHEDULER_PLAN_BUILDER_H_

// Turns admitted jobs into the ExecutionPlan a replica leader broadcasts.
// Pure functions; thread-safe; never block.
//
// A plan holds one shape (model, size, frames, steps, shift, sampler, output
// format) and one item per job. CanBatch is the rule the batch policy
// (batch_policy.h) uses to put several jobs in one plan.

#include <memory>
#include <vector>

#include "proto/dserve/internal/v1/replica_leader.pb.h"
#include "scheduler/job.h"

namespace dserve::scheduler {

// True when two effective requests can share one plan (same model, shape,
// steps, shift, sampler, output format and fps).
bool CanBatch(const dserve::v1::GenerateRequest& a,
              const dserve::v1::GenerateRequest& b);

// Builds the plan for `jobs` (non-empty, pairwise CanBatch). The shape comes
// from the first job's effective request; deadline_unix_ms is the latest of
// the jobs' deadlines (0 when any job has none).
dserve::internal::v1::ExecutionPlan BuildPlan(
    const std::vector<std::shared_ptr<Job>>& jobs);

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_PLAN_BUILDER_H_
