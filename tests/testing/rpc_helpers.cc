#include "tests/testing/rpc_helpers.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/client_context.h>
#include <grpcpp/support/sync_stream.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/rpc_status.h"
#include "common/status_macros.h"

namespace dserve::tests {

using dserve::v1::GenerateEvent;

const dserve::v1::Result* GenerateOutcome::result() const {
  for (const GenerateEvent& event : events) {
    if (event.has_result()) return &event.result();
  }
  return nullptr;
}

std::string GenerateOutcome::job_id() const {
  return events.empty() ? "" : events.front().job_id();
}

int GenerateOutcome::replica() const {
  for (const GenerateEvent& event : events) {
    if (event.has_started()) return event.started().replica();
  }
  return -1;
}

GenerateOutcome GenerateToEnd(Stub& stub,
                              const dserve::v1::GenerateRequest& request,
                              absl::Duration timeout) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(timeout));
  std::unique_ptr<grpc::ClientReaderInterface<GenerateEvent>> reader =
      stub.Generate(&context, request);
  GenerateOutcome outcome;
  GenerateEvent event;
  while (reader->Read(&event)) outcome.events.push_back(event);
  outcome.status = reader->Finish();
  return outcome;
}

absl::StatusOr<dserve::v1::Job> GetJob(Stub& stub, const std::string& job_id) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  dserve::v1::GetJobRequest request;
  request.set_job_id(job_id);
  dserve::v1::Job job;
  const grpc::Status status = stub.GetJob(&context, request, &job);
  RETURN_IF_ERROR(common::FromGrpcStatus(status));
  return job;
}

absl::StatusOr<dserve::v1::Job> WaitForJob(
    Stub& stub, const std::string& job_id,
    const std::function<bool(const dserve::v1::Job&)>& done,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  dserve::v1::Job last;
  while (true) {
    ASSIGN_OR_RETURN(dserve::v1::Job job, GetJob(stub, job_id));
    if (done(job)) return job;
    last = std::move(job);
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "job ", job_id, " did not reach the expected condition within ",
      absl::FormatDuration(timeout), "; last state ",
      dserve::v1::JobState_Name(last.state()), " step ", last.step(), "/",
      last.total_steps()));
}

bool IsTerminal(dserve::v1::JobState state) {
  return state == dserve::v1::JOB_STATE_SUCCEEDED ||
         state == dserve::v1::JOB_STATE_FAILED ||
         state == dserve::v1::JOB_STATE_CANCELLED ||
         state == dserve::v1::JOB_STATE_DEADLINE_EXCEEDED;
}

absl::StatusOr<dserve::v1::ModelInfo> DefaultModel(Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  dserve::v1::ListModelsResponse response;
  const grpc::Status status =
      stub.ListModels(&context, dserve::v1::ListModelsRequest(), &response);
  RETURN_IF_ERROR(common::FromGrpcStatus(status));
  if (response.models().empty()) {
    return absl::NotFoundError("ListModels returned no models");
  }
  for (const dserve::v1::ModelInfo& model : response.models()) {
    if (model.is_default()) return model;
  }
  return response.models(0);
}

namespace {

int RoundToStep(int pixels, int step) {
  step = std::max(step, 1);
  return std::max(step, pixels / step * step);
}

}  // namespace

dserve::v1::GenerateRequest SmallRequest(const dserve::v1::ModelInfo& model,
                                         int size, int steps) {
  dserve::v1::GenerateRequest request;
  request.set_prompt("a red circle on a blue sky");
  request.set_width(RoundToStep(size, model.size_step()));
  request.set_height(RoundToStep(size, model.size_step()));
  request.set_num_frames(1);
  request.set_num_inference_steps(steps);
  request.set_guidance_scale(1.0f);
  request.set_seed(42);
  return request;
}

dserve::v1::GenerateRequest LongRequest(const dserve::v1::ModelInfo& model,
                                        int steps, int size) {
  dserve::v1::GenerateRequest request;
  request.set_prompt("a long walk through a green forest");
  request.set_width(
      RoundToStep(std::min(size, model.max_width()), model.size_step()));
  request.set_height(
      RoundToStep(std::min(size, model.max_height()), model.size_step()));
  request.set_num_frames(1);
  request.set_num_inference_steps(steps);
  // Guidance > 1 doubles the work per step, which keeps each step long
  // enough to act on.
  request.set_guidance_scale(5.0f);
  request.set_seed(7);
  return request;
}

}  // namespace dserve::tests
