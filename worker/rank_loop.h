#ifndef DSERVE_WORKER_RANK_LOOP_H_
#define DSERVE_WORKER_RANK_LOOP_H_

// The denoising loop every rank of a replica runs in lockstep (SPMD).
//
// Before each step the leader (world rank 0) broadcasts a control word,
// continue or cancel. Cancellation is therefore decided in exactly one place
// and seen by every rank at the same step boundary, so no rank is ever left
// waiting inside a collective that its peers have abandoned.
//
//   RunPlan: spec ← plan (the leader validated it once, in Execute),
//            OnEncodeStart, Prepare (text encode + noise)
//            for each step: RunStep  (control word → Pipeline::Step),
//                           OnStepDone
//            leader only: Decode (OnDecodeProgress per chunk)
//
// Several models: a replica serves every model of the server; each plan
// names one (ExecutionPlan.model, empty = the default) and every rank runs
// that model's pipeline and predictor for the whole plan.
//
// Ownership: borrows the Pipelines and the world Communicator, which must
// outlive it. Not thread-safe: the thread that drives the Communicator
// drives the RankLoop. Every call blocks until its compute and collectives
// are done.

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parallel/communicator.h"
#include "proto/dserve/internal/v1/replica_leader.pb.h"
#include "worker/models/pipeline.h"
#include <ATen/core/Tensor.h>

namespace dserve::worker {

// Leader-side hooks into a running plan. Only world rank 0 passes one.
// Called on the RankLoop's thread.
class PlanObserver {
 public:
  virtual ~PlanObserver() = default;
  // Asked before every step; true cancels the plan on every rank.
  virtual bool ShouldCancel() = 0;
  // After each finished step (`state.step` steps are done, 1-based).
  virtual void OnStepDone(const models::DenoiseState& state, int total_steps,
                          double step_ms) = 0;
  // As the plan starts encoding its prompts, before step 1.
  virtual void OnEncodeStart(int /*total_steps*/) {}
  // While the leader decodes: item `item` has `chunks_done` of its
  // `chunks_total` decode chunks done (0 as it starts; latent_decoder.h).
  virtual void OnDecodeProgress(int /*item*/, int /*chunks_done*/,
                                int /*chunks_total*/) {}
  // False: the leader skips Decode and PlanOutput::pixels stays undefined
  // (cost calibration times the steps only).
  virtual bool NeedsPixels() const { return true; }
};

struct PlanOutput {
  // Leader only: [B, F, H, W, 3] float32 in [0, 1]. Undefined on followers,
  // which have no use for pixels.
  at::Tensor pixels;
  // Per item: prompt words the text encoder did not know.
  std::vector<std::vector<std::string>> unknown_words;
  int steps_done = 0;
  double text_encode_ms = 0;
  double denoise_ms = 0;
  double decode_ms = 0;
  // Leader only: texts answered by / missing from its prompt-embedding
  // cache (models::DenoiseState).
  int text_cache_hits = 0;
  int text_cache_misses = 0;
  // Step cache counters (models::StepCacheState); 0 and 0 when it is off.
  int steps_computed = 0;
  int steps_reused = 0;
};

// One model a replica serves, under its pipeline's config().name.
struct LoopModel {
  // Borrowed; outlives the RankLoop.
  const models::Pipeline* pipeline = nullptr;
  // Computes each step's model prediction across the replica's mesh
  // (ParallelDiT::GuidedPrediction); null = this process alone (1 rank).
  models::GuidedPredictor predictor;
};

class RankLoop {
 public:
  // `models`: every served model, names unique (worker_main checks them);
  // `default_model` names the one a plan with an empty model runs ("" = the
  // first). `now` is injected so tests control the reported timings.
  RankLoop(std::vector<LoopModel> models, std::string default_model,
           parallel::Communicator& world,
           std::function<absl::Time()> now = &absl::Now);
  // One model, the default.
  RankLoop(const models::Pipeline& pipeline, parallel::Communicator& world,
           std::function<absl::Time()> now = &absl::Now,
           models::GuidedPredictor predictor = nullptr);

  // The model `name` names ("" = the default); NOT_FOUND listing the served
  // names otherwise. Pure.
  absl::StatusOr<const LoopModel*> FindModel(const std::string& name) const;
  const std::vector<LoopModel>& models() const { return models_; }
  const std::string& default_model() const { return default_model_; }

  // The pipeline's view of `plan`, validated: INVALID_ARGUMENT naming the
  // field, value and allowed range; NOT_FOUND for a model this replica does
  // not serve. Pure; runs no collective.
  absl::StatusOr<models::GenerationSpec> ResolveSpec(
      const dserve::internal::v1::ExecutionPlan& plan) const;

  // Runs `plan` on this rank from start to finish. Every rank of the world
  // must call it for the same plan. Returns CANCELLED when the leader
  // cancelled, DEADLINE_EXCEEDED when the leader's clock (`now`) passed
  // plan.deadline_unix_ms() before a step (both after the steps already
  // done; the leader decides, the control word tells every rank, so all
  // ranks stop at the same step boundary). A failed collective returns its
  // error and marks the loop unhealthy: the replica cannot continue.
  absl::StatusOr<PlanOutput> RunPlan(
      const dserve::internal::v1::ExecutionPlan& plan, PlanObserver* observer);

  // One lockstep step of the running plan's model (the default outside a
  // plan): the leader's control word, then Pipeline::Step.
  // CANCELLED (state untouched) if the leader cancels.
  // With a finite `deadline` (leader only; other ranks follow its word),
  // DEADLINE_EXCEEDED (state untouched) once now() >= deadline.
  absl::Status RunStep(models::DenoiseState& state, PlanObserver* observer,
                       absl::Time deadline = absl::InfiniteFuture());

  // While the leader decodes alone, the other ranks wait in
  // ReceiveCommand, bounded by the collective timeout. So after a decode
  // chunk, once `every` has passed since decoding began or since the last
  // heartbeat, the leader sends them an IDLE command (world size > 1 only).
  // A decode is then bounded per chunk, not per video. Default 5 s.
  void set_decode_heartbeat(absl::Duration every) { decode_heartbeat_ = every; }

  // False once a collective has failed; the process should exit.
  bool healthy() const { return healthy_; }
  bool is_leader() const { return world_.rank() == 0; }

 private:
  const std::vector<LoopModel> models_;
  const std::string default_model_;
  parallel::Communicator& world_;
  std::function<absl::Time()> now_;
  // The model of the plan RunPlan is running; the default between plans.
  const LoopModel* current_;
  bool healthy_ = true;
  absl::Duration decode_heartbeat_ = absl::Seconds(5);
};

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_RANK_LOOP_H_
