#ifndef DSERVE_WORKER_PLAN_CODEC_H_
#define DSERVE_WORKER_PLAN_CODEC_H_

// How the leader tells its peers what to do next, over the replica's world
// Communicator.
//
// Every exchange starts with a fixed-size header broadcast from rank 0:
// int64 [command, payload_bytes]. For kPlan, a second broadcast carries the
// ExecutionPlan as protobuf bytes in a uint8 tensor of payload_bytes. The
// leader sends a command at least every heartbeat interval (kIdle when there
// is nothing to do), so a follower never waits inside a collective longer
// than that, and a dead peer turns into a failed broadcast within seconds.
//
// Free functions, no state. Send/Receive block until the broadcast is
// complete on this rank; they must be called on every rank in the same order
// (rank 0 sends, the others receive).

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include "proto/dserve/internal/v1/replica_leader.pb.h"
#include "worker/models/pipeline.h"
#include <ATen/core/Tensor.h>

namespace dserve::worker {

enum class Command : int64_t {
  // Heartbeat: nothing to do, wait for the next command.
  kIdle = 0,
  // An ExecutionPlan follows; every rank runs it in lockstep.
  kPlan = 1,
  // The replica is shutting down; exit 0.
  kShutdown = 2,
};

// Largest plan the codec accepts (prompts are bounded far below this).
inline constexpr int64_t kMaxPlanBytes = 64 << 20;

// Serialises `plan` into a 1-D uint8 CPU tensor.
absl::StatusOr<at::Tensor> EncodePlan(
    const dserve::internal::v1::ExecutionPlan& plan);
// Parses a tensor produced by EncodePlan.
absl::StatusOr<dserve::internal::v1::ExecutionPlan> DecodePlan(
    const at::Tensor& bytes);

// Rank 0: broadcasts `command` and, for kPlan, `plan` (ignored otherwise).
absl::Status SendCommand(parallel::Communicator& world, Command command,
                         const dserve::internal::v1::ExecutionPlan& plan);

struct ReceivedCommand {
  Command command = Command::kIdle;
  // Set for kPlan.
  dserve::internal::v1::ExecutionPlan plan;
};

// Ranks other than 0: receives the next command from rank 0.
absl::StatusOr<ReceivedCommand> ReceiveCommand(parallel::Communicator& world);

// The model-facing view of a plan: shape fields and items, unvalidated
// (Pipeline::ValidateSpec checks them).
models::GenerationSpec SpecFromPlan(
    const dserve::internal::v1::ExecutionPlan& plan);

// The plan's job ids joined by ',' for log lines ("-" when none).
std::string PlanJobIds(const dserve::internal::v1::ExecutionPlan& plan);

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_PLAN_CODEC_H_
