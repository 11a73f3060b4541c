#ifndef DSERVE_WORKER_COST_CALIBRATION_H_
#define DSERVE_WORKER_COST_CALIBRATION_H_

// What one model evaluation costs on this replica, measured once right
// after the model loaded (before rank 0 reports "leader <port>"): the
// leader runs two short plans (one item, guidance 1, 3 steps, a single
// square frame of about small_tokens and large_tokens DiT tokens) on every
// rank, exactly as a job runs its steps (no decode: the observer asks for
// no pixels), keeps each plan's fastest step (the first
// one pays for warm-up) and fits seconds = a*tokens + b*tokens^2
// (common::FitStepCost; attention is the b term). The result travels to
// the frontend as ModelInfo.cost, which refuses jobs over
// --max_job_seconds (common/cost_estimate.h).
//
// Rank 0 only, on the thread that drives the world Communicator, while the
// other ranks are in FollowLeader (they see two ordinary PLAN commands).
// Blocks for the two plans: about 0.2 s for the built-in model on one CPU
// core. Not thread-safe (it drives the RankLoop).

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/cost_estimate.h"
#include "parallel/communicator.h"
#include "proto/dserve/internal/v1/replica_leader.pb.h"
#include "proto/dserve/v1/diffusion_service.pb.h"
#include "worker/models/model_config.h"
#include "worker/rank_loop.h"

namespace dserve::worker {

struct CostCalibrationOptions {
  // Token counts of the two timed plans (clipped to the model's largest
  // frame).
  int64_t small_tokens = 256;
  int64_t large_tokens = 1024;
  // Model evaluations per guided step on this replica's mesh: 1 where a
  // cfg axis runs both branches at once, else 2.
  int guided_evaluations = 2;
  // ModelInfo.cost.default_max_job_seconds: the --max_job_seconds a server
  // uses unless told otherwise.
  double default_max_job_seconds = 600;
  std::function<absl::Time()> now = &absl::Now;
};

// The DiT token geometry of `config`: VAE stride (8 for wan_vae, 1 for the
// pixel decoder) times patch height per token side; the causal VAE's 4
// frames per latent frame; patch depth latent frames per token.
common::TokenGeometry TokenGeometryOf(const models::PipelineConfig& config);

// The plan timed for about `tokens` tokens: one square frame, sides the
// smallest multiple of size_step covering sqrt(tokens) tokens, within the
// model's max width/height; 1 item, guidance 1, 3 steps.
dserve::internal::v1::ExecutionPlan CalibrationPlan(
    const models::PipelineConfig& config, int64_t tokens);

// Runs the two plans on every rank (SendCommand + RankLoop::RunPlan) and
// fits the cost. An error from a collective leaves `loop` unhealthy (the
// worker must exit); other errors (a plan the model refuses) leave the
// replica usable, without a cost model.
absl::StatusOr<dserve::v1::CostModel> CalibrateCost(
    const models::PipelineConfig& config, RankLoop& loop,
    parallel::Communicator& world, const CostCalibrationOptions& options);

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_COST_CALIBRATION_H_
