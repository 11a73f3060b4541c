#include "scheduler/plan_builder.h"

#include <algorithm>
#include <optional>

namespace dserve::scheduler {

bool CanBatch(const dserve::v1::GenerateRequest& a,
              const dserve::v1::GenerateRequest& b) {
  return a.model() == b.model() && a.width() == b.width() &&
         a.height() == b.height() && a.num_frames() == b.num_frames() &&
         a.num_inference_steps() == b.num_inference_steps() &&
         a.flow_shift() == b.flow_shift() && a.sampler() == b.sampler() &&
         a.output_format() == b.output_format() && a.fps() == b.fps() &&
         a.step_cache().threshold() == b.step_cache().threshold() &&
         a.step_cache().warmup_steps() == b.step_cache().warmup_steps() &&
         a.step_cache().max_reused_in_a_row() ==
             b.step_cache().max_reused_in_a_row();
}

dserve::internal::v1::ExecutionPlan BuildPlan(
    const std::vector<std::shared_ptr<Job>>& jobs) {
  dserve::internal::v1::ExecutionPlan plan;
  if (jobs.empty()) return plan;
  const dserve::v1::GenerateRequest& shape = jobs.front()->effective_request();
  plan.set_model(shape.model());
  plan.set_width(shape.width());
  plan.set_height(shape.height());
  plan.set_num_frames(shape.num_frames());
  plan.set_num_inference_steps(shape.num_inference_steps());
  plan.set_flow_shift(shape.flow_shift());
  plan.set_sampler(shape.sampler());
  plan.set_output_format(shape.output_format());
  plan.set_fps(shape.fps());
  if (shape.has_step_cache()) *plan.mutable_step_cache() = shape.step_cache();
  // The plan stops as a whole, so it carries its latest deadline (none if
  // any job has none); a job whose earlier deadline passes ends alone
  // (Scheduler::ExpireDeadlines).
  std::optional<absl::Time> latest = jobs.front()->deadline();
  for (const auto& job : jobs) {
    if (!latest.has_value() || !job->deadline().has_value()) {
      latest.reset();
      break;
    }
    latest = std::max(*latest, *job->deadline());
  }
  if (latest.has_value()) {
    plan.set_deadline_unix_ms(std::max<int64_t>(1, absl::ToUnixMillis(*latest)));
  }
  for (const auto& job : jobs) {
    const dserve::v1::GenerateRequest& r = job->effective_request();
    dserve::internal::v1::PlanItem* item = plan.add_items();
    item->set_job_id(job->id());
    item->set_prompt(r.prompt());
    item->set_negative_prompt(r.negative_prompt());
    item->set_seed(r.seed());
    item->set_guidance_scale(r.guidance_scale());
    item->set_preview_every_n_steps(r.preview_every_n_steps());
  }
  return plan;
}

}  // namespace dserve::scheduler
