#ifndef DSERVE_WORKER_MODELS_PARALLEL_DIT_H_
#define DSERVE_WORKER_MODELS_PARALLEL_DIT_H_

// The DiT forward and the guided prediction of one denoising step, spread
// over a replica's mesh. Every mode composes in one forward:
//
//   CFG    cfg rank 0 runs the conditional branch, rank 1 the
//          unconditional; one all-gather; every rank combines
//          u + s·(c − u) (c where s == 1, as the 1-process path does).
//   SP     after Embed the token sequence is padded to a multiple of
//          sp = ring·ulysses and rank i keeps block i (RoPE rows sliced the
//          same way); self-attention runs through an AttentionCore built from
//          parallel/: Ulysses all-to-alls around ring attention (either may
//          be degree 1); padded keys are masked; cross-attention, FFN and the
//          head are token-local; one all-gather (and trim) after the head.
//          With ParallelDiTOptions::async_ulysses the q, k and v scatters
//          are started together (Communicator::AllToAllAsync) and waited
//          for together; the output gather stays blocking, as the
//          out-projection right after it needs every head of a token.
//   PP     stage p owns StageLayers(num_layers, p, pp); the model batch is
//          cut into min(rows, pp) micro-batches (the CFG halves and batched
//          items) that fill the pipeline; the last stage's head output is
//          broadcast over the pp group so every rank has the prediction.
//   TP     TensorParallelBlocks (heads and FFN columns sharded).
//
// Step cache (GuidedPrediction with a StepCacheStep; step_cache.h): the
// decision is made once per step for the whole replica and broadcast, so
// every rank reuses the same steps. Each rank holding block 0 (PP stage 0)
// runs it on every micro-batch and sums Σ|r − r_prev| and Σ|r_prev| over
// its shard of the first-block residual r (its CFG branch's rows, minus the
// unconditional rows of guidance-1 items that the 1-process batch does not
// hold; its sequence shard, minus padding); the [2] float64 parts are
// all-reduced over the cfg group, then the sp (ring × ulysses) group, so
// they are the 1-process sums up to rounding. World rank 0 (cfg, sp, pp
// and tp coordinates 0) decides and broadcasts [reuse, accumulated] (2
// float64) to the whole replica: TP ranks and later PP stages cannot
// diverge. A reused step adds, on each rank, the cached residual of the
// blocks it holds (per PP stage and micro-batch, its sequence shard, TP
// replicated), extrapolated from its last two computed ones
// (ReusedResidual: elementwise and linear, so no extra traffic); their sum
// over the stages is the 1-process residual of blocks 1..n. Threshold 0
// computes every step: bit-identical to off.
//
// Equivalence: on the same weights and inputs every layout returns the
// 1-process prediction up to float reassociation (tested ≤ 1e-4 relative
// over whole denoising runs, fp32).
//
// Ownership: borrows the DiT (or the Pipeline) and the context's
// communicators (both must outlive it); made from a DiT and weights it owns
// its TP weight slices, made from a Pipeline it borrows the pipeline's. Not thread-safe (it drives the
// communicators). Every rank of the replica must call the same method with
// the same inputs, in the same order; calls block until the collectives
// are done.

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "parallel/activation_codec.h"
#include "worker/models/dit.h"
#include "worker/models/model_config.h"
#include "worker/models/parallel_context.h"
#include "worker/models/pipeline.h"
#include "worker/models/step_cache.h"
#include "worker/models/tensor_parallel.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

// The model-dependent mesh rules: DeviceMesh::ValidateForModel (num_heads
// divisible by ulysses·tp, num_layers >= pp) and ffn_dim divisible by tp.
absl::Status ValidateMeshForModel(const parallel::DeviceMesh& mesh,
                                  const DiTConfig& config);

struct ParallelDiTOptions {
  // Scatter q, k and v with UlyssesScatterHeadsAsync (three exchanges in
  // flight at once) instead of three blocking UlyssesScatterHeads. Same
  // result bit for bit and same bytes; only the timing differs. No effect
  // without Ulysses (ulysses = 1). Off by default: on this 2-core CPU host
  // it measured faster for u2 but slower for u4 and ring2×u2, inside the
  // load noise (see the README's Parallelism section); with NCCL both
  // paths enqueue the same kernels on one stream.
  bool async_ulysses = false;
  // --sp_compression (issue 15 item 2): kInt8 / kInt4 send the Ulysses
  // all-to-alls and the Ring K/V hops as int8 / packed int4 residuals
  // against the previous step (parallel/activation_codec.h) after
  // `sp_exact_steps` exact steps of each plan. kOff is today's exact path,
  // bit for bit.
  parallel::SpCompression sp_compression = parallel::SpCompression::kOff;
  int sp_exact_steps = parallel::kDefaultSpExactSteps;
};

class ParallelDiT {
 public:
  // `coordinate_planes` as in PipelineConfig (the pipeline appends them
  // before the DiT). Errors: ValidateMeshForModel's, or a missing TP key.
  // The TP slices of this rank's stage are cut from `weights`.
  static absl::StatusOr<std::unique_ptr<ParallelDiT>> Create(
      const DiT& dit, const WeightMap& weights, bool coordinate_planes,
      ParallelContext context, ParallelDiTOptions options = {});
  // Over the share of the DiT `model` materialised (its
  // PipelineOptions::dit_share, e.g. DiTShareForRank): nothing is copied.
  // FAILED_PRECONDITION if that share is not this rank's place in the
  // context's pp and tp groups.
  static absl::StatusOr<std::unique_ptr<ParallelDiT>> Create(
      const Pipeline& model, ParallelContext context,
      ParallelDiTOptions options = {});

  // The DiT forward of `latents` (planes already appended), [B, C_out, F, H,
  // W] on every rank. Ignores the cfg dimension (each cfg rank may call it
  // with its own inputs).
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& latents,
                                     const at::Tensor& timesteps,
                                     const at::Tensor& context) const;

  // The parallel counterpart of models::GuidedPrediction (latents without
  // planes), identical inputs on every rank; the result is on every rank.
  // `step_cache` (null = off): this step's cache (see above); every rank
  // passes its own, and the decision and counters end up identical on all.
  absl::StatusOr<at::Tensor> GuidedPrediction(
      const at::Tensor& x, const at::Tensor& timesteps,
      const at::Tensor& cond_context, const at::Tensor& uncond_context,
      const std::vector<float>& guidance,
      StepCacheStep* step_cache = nullptr) const;

  // Drops the compressed-traffic references (a new plan starts exact).
  // GuidedPrediction also does this by itself when a step's timestep is not
  // below the previous step's (denoising schedules decrease within a plan)
  // or the shapes change; call it where a plan boundary is known.
  void ResetSpCompression() const;

  const ParallelContext& context() const { return context_; }
  const ParallelDiTOptions& options() const { return options_; }

 private:
  ParallelDiT(const DiT& dit, bool coordinate_planes, ParallelContext context,
              ParallelDiTOptions options)
      : dit_(dit),
        coordinate_planes_(coordinate_planes),
        context_(std::move(context)),
        options_(options) {
    if (options_.sp_compression != parallel::SpCompression::kOff) {
      sp_state_ = std::make_unique<parallel::SpCompressionState>(
          options_.sp_compression, options_.sp_exact_steps);
    }
  }
  // Starts the compressed-traffic step of one GuidedPrediction.
  void BeginSpStep(const at::Tensor& timesteps) const;
  // Forward; communication failures throw c10::Error.
  // `sp`: the compressed-traffic state of a GuidedPrediction step, or null
  // (exact; Forward alone has no step to compress against).
  // `cache`: the step cache of a GuidedPrediction step, or null. `counted`:
  // per row of `latents`, whether its first-block change counts towards
  // the decision (empty = every row).
  at::Tensor ForwardOrThrow(const at::Tensor& latents,
                            const at::Tensor& timesteps,
                            const at::Tensor& context,
                            parallel::SpCompressionState* sp,
                            StepCacheStep* cache = nullptr,
                            const std::vector<bool>& counted = {}) const;
  // Step cache, before this stage's blocks: on PP stage 0, runs block 0 on
  // every micro-batch (in place, with `run_block0`) and reduces the parts;
  // then the replica-wide decision (see the class comment). Returns it, the
  // same on every rank; counters are not touched yet.
  bool DecideStepCache(std::vector<DiTActivations>& micro,
                       const std::function<void(DiTActivations&)>& run_block0,
                       int64_t valid_tokens, const std::vector<bool>& counted,
                       StepCacheStep& cache) const;

  const DiT& dit_;
  bool coordinate_planes_;
  ParallelContext context_;
  ParallelDiTOptions options_;
  std::optional<TensorParallelBlocks> owned_tp_blocks_;
  const TensorParallelBlocks* tp_blocks_ = nullptr;  // owned or borrowed
  // References of --sp_compression (null when off) and the last step's
  // timestep (plan boundaries); mutated by the const forward, which is not
  // thread-safe anyway.
  std::unique_ptr<parallel::SpCompressionState> sp_state_;
  mutable double sp_last_timestep_ = 0;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_PARALLEL_DIT_H_
