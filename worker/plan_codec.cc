#include "worker/plan_codec.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include <ATen/ATen.h>

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionPlan;

constexpr int kRoot = 0;

bool IsKnownCommand(int64_t value) {
  return value == static_cast<int64_t>(Command::kIdle) ||
         value == static_cast<int64_t>(Command::kPlan) ||
         value == static_cast<int64_t>(Command::kShutdown);
}

// The proto enum's numbers equal SamplerKind's. A value this build does not
// know (a newer frontend) is passed through unchanged, so Pipeline::Prepare
// rejects it naming the value.
models::SamplerKind SamplerFromProto(dserve::v1::Sampler sampler) {
  switch (sampler) {
    case dserve::v1::SAMPLER_UNSPECIFIED:
      return models::SamplerKind::kModelDefault;
    case dserve::v1::SAMPLER_FLOW_EULER:
      return models::SamplerKind::kFlowEuler;
    case dserve::v1::SAMPLER_FLOW_UNIPC:
      return models::SamplerKind::kFlowUniPC;
    default:
      return static_cast<models::SamplerKind>(static_cast<int>(sampler));
  }
}

}  // namespace

absl::StatusOr<at::Tensor> EncodePlan(const ExecutionPlan& plan) {
  const size_t size = plan.ByteSizeLong();
  if (static_cast<int64_t>(size) > kMaxPlanBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "execution plan is ", size, " bytes; allowed at most ", kMaxPlanBytes));
  }
  at::Tensor bytes = at::empty({static_cast<int64_t>(size)}, at::kByte);
  if (size > 0 && !plan.SerializeToArray(bytes.data_ptr<uint8_t>(),
                                         static_cast<int>(size))) {
    return absl::InternalError("failed to serialise the execution plan");
  }
  return bytes;
}

absl::StatusOr<ExecutionPlan> DecodePlan(const at::Tensor& bytes) {
  if (bytes.scalar_type() != at::kByte || bytes.dim() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan tensor must be 1-D uint8, got ", bytes.dim(), "-D ",
                     std::string(c10::toString(bytes.scalar_type()))));
  }
  at::Tensor contiguous = bytes.contiguous();
  ExecutionPlan plan;
  if (!plan.ParseFromArray(contiguous.data_ptr<uint8_t>(),
                           static_cast<int>(contiguous.numel()))) {
    return absl::DataLossError(absl::StrCat(
        "execution plan of ", contiguous.numel(), " bytes does not parse"));
  }
  return plan;
}

absl::Status SendCommand(parallel::Communicator& world, Command command,
                         const ExecutionPlan& plan) {
  at::Tensor payload;
  int64_t payload_bytes = 0;
  if (command == Command::kPlan) {
    absl::StatusOr<at::Tensor> encoded = EncodePlan(plan);
    if (!encoded.ok()) return encoded.status();
    payload = *std::move(encoded);
    payload_bytes = payload.numel();
  }
  at::Tensor header = at::empty({2}, at::kLong);
  header[0] = static_cast<int64_t>(command);
  header[1] = payload_bytes;
  if (absl::Status s = world.Broadcast(header, kRoot); !s.ok()) return s;
  if (payload_bytes > 0) {
    if (absl::Status s = world.Broadcast(payload, kRoot); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<ReceivedCommand> ReceiveCommand(parallel::Communicator& world) {
  at::Tensor header = at::zeros({2}, at::kLong);
  if (absl::Status s = world.Broadcast(header, kRoot); !s.ok()) return s;
  const int64_t command = header[0].item<int64_t>();
  const int64_t payload_bytes = header[1].item<int64_t>();
  // A header we cannot understand means the ranks disagree on the protocol;
  // continuing would desynchronise every later collective.
  if (!IsKnownCommand(command)) {
    return absl::DataLossError(
        absl::StrCat("unknown command ", command, " from the leader"));
  }
  if (payload_bytes < 0 || payload_bytes > kMaxPlanBytes) {
    return absl::DataLossError(
        absl::StrCat("command payload of ", payload_bytes,
                     " bytes; allowed 0 to ", kMaxPlanBytes));
  }
  ReceivedCommand received;
  received.command = static_cast<Command>(command);
  if (received.command == Command::kPlan) {
    at::Tensor payload = at::empty({payload_bytes}, at::kByte);
    if (payload_bytes > 0) {
      if (absl::Status s = world.Broadcast(payload, kRoot); !s.ok()) return s;
    }
    absl::StatusOr<ExecutionPlan> plan = DecodePlan(payload);
    if (!plan.ok()) return plan.status();
    received.plan = *std::move(plan);
  }
  return received;
}

models::GenerationSpec SpecFromPlan(const ExecutionPlan& plan) {
  models::GenerationSpec spec;
  spec.width = plan.width();
  spec.height = plan.height();
  spec.num_frames = plan.num_frames();
  spec.num_steps = plan.num_inference_steps();
  spec.flow_shift = plan.flow_shift();
  spec.sampler = SamplerFromProto(plan.sampler());
  if (plan.has_step_cache() && plan.step_cache().threshold() > 0) {
    spec.step_cache.enabled = true;
    spec.step_cache.threshold = plan.step_cache().threshold();
    spec.step_cache.warmup_steps = plan.step_cache().warmup_steps();
    spec.step_cache.max_reused_in_a_row =
        plan.step_cache().max_reused_in_a_row();
  }
  spec.items.reserve(plan.items_size());
  for (const auto& item : plan.items()) {
    models::GenerationItem g;
    g.prompt = item.prompt();
    g.negative_prompt = item.negative_prompt();
    g.seed = item.seed();
    g.guidance_scale = item.guidance_scale();
    spec.items.push_back(std::move(g));
  }
  return spec;
}

std::string PlanJobIds(const ExecutionPlan& plan) {
  std::string ids;
  for (const auto& item : plan.items()) {
    if (!ids.empty()) ids += ',';
    ids += item.job_id();
  }
  return ids.empty() ? "-" : ids;
}

}  // namespace dserve::worker
