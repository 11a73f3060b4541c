#ifndef DSERVE_TRAINING_TRAINER_H_
#define DSERVE_TRAINING_TRAINER_H_

// Trains a PipelineConfig (DiT + text encoder, pixel space) on the
// procedural shapes of shapes.h with flow matching, on the CPU with
// LibTorch autograd.
//
// Recipe: σ ~ U(0, 1) per item (every noise level weighted evenly; a
// sigma_shift > 1 moves weight to high noise),
// x_σ = (1−σ)·x0 + σ·ε, the DiT reads x_σ (plus coordinate planes when the
// config has them) and predicts x0 or the velocity ε − x0 as the config's
// prediction_type says; the loss is the MSE to that target, with the
// shape's pixels weighted by shape_loss_weight. Prompts
// come from RandomPrompt and are dropped to "" with uncond_probability so
// the model also learns the unconditional branch CFG needs. AdamW with
// linear warm-up and cosine decay, global gradient-norm clipping, and an
// EMA copy of the weights for export.
//
// Determinism: batch k is a pure function of (seed, k), and every piece of
// state that changes (weights, EMA, AdamW moments, step) is checkpointed,
// so a run resumed from a checkpoint continues bit for bit, given the same
// thread count.
//
// Ownership / threading: a Trainer owns its weights and optimizer; it is
// not thread-safe. Every call blocks until its compute or I/O is done.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include <ATen/core/Tensor.h>

namespace dserve::training {

struct TrainerOptions {
  // Training images are width x height, one frame.
  int width = 32;
  int height = 32;
  int batch_size = 32;
  // Length of the learning-rate schedule (warm-up + cosine to
  // min_lr_fraction · learning_rate); steps past it keep the minimum.
  int total_steps = 1000;
  int warmup_steps = 50;
  double learning_rate = 1e-3;
  double min_lr_fraction = 0.1;
  double weight_decay = 0.01;
  double grad_clip_norm = 1.0;
  // EMA decay; the effective decay is min(ema_decay, (1+k)/(10+k)).
  double ema_decay = 0.995;
  // Training noise levels: u ~ U(0, 1) mapped through the sampler's shift,
  // σ = s·u / (1 + (s−1)·u). 1 = uniform σ; s > 1 spends more of the
  // batch at high noise, where only the prompt says what to draw.
  double sigma_shift = 1.0;
  // Loss weight of the pixels the shape covers (background pixels weigh
  // 1). The shape is ~10% of an image, so with plain MSE a model that
  // paints only the background is already close to the optimum and learns
  // the shape slowly; > 1 makes the shape's colour and place count more.
  double shape_loss_weight = 1.0;
  // Chance that an item's prompt is replaced by "" (for CFG).
  double uncond_probability = 0.1;
  uint64_t seed = 0;
};

// Checks ranges; errors name the field, its value and what is allowed.
absl::Status ValidateTrainerOptions(const TrainerOptions& options,
                                    const models::PipelineConfig& config);

// One training batch, a pure function of (options.seed, step).
struct TrainingBatch {
  at::Tensor x0;     // [B, 3, 1, H, W] clean images in [-1, 1]
  at::Tensor noise;  // [B, 3, 1, H, W] N(0, 1)
  at::Tensor sigma;  // [B] in [0, 1)
  at::Tensor
      loss_weight;  // [B, 1, 1, H, W]: shape_loss_weight on the shape, else 1
  std::vector<std::string> prompts;
};
TrainingBatch MakeTrainingBatch(const TrainerOptions& options, int64_t step);

// Learning rate at `step` (0-based) under `options`' schedule.
double LearningRateAt(const TrainerOptions& options, int64_t step);

class Trainer {
 public:
  // Initialises from RandomWeights(config, options.seed) with the DiT head
  // zeroed (so the first prediction is 0, mid-grey, as in Wan).
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      models::PipelineConfig config, TrainerOptions options);
  ~Trainer();

  // One optimisation step on MakeTrainingBatch(options, step()); returns the
  // batch loss before the update.
  absl::StatusOr<double> Step();
  int64_t step() const { return step_; }
  const models::PipelineConfig& config() const { return config_; }
  const TrainerOptions& options() const { return options_; }
  const models::WeightMap& weights() const { return weights_; }
  const models::WeightMap& ema_weights() const { return ema_; }

  // Loss of the current (ema = false) or EMA weights on `batch`, without
  // gradients.
  absl::StatusOr<double> Loss(const TrainingBatch& batch, bool ema) const;

  // `dir`/checkpoint.safetensors (weights, EMA, step) and
  // `dir`/optimizer.pt (AdamW state), each written to a temporary name and
  // renamed, so an interrupted save leaves the previous checkpoint intact.
  absl::Status SaveCheckpoint(const std::string& dir) const;
  // Restores a checkpoint written by SaveCheckpoint for the same config.
  absl::Status LoadCheckpoint(const std::string& dir);
  // `dir`/config.json + `dir`/model.safetensors (fp32) in the layout
  // Pipeline::LoadFromDirectory reads; EMA weights if `ema`.
  absl::Status Export(const std::string& dir, bool ema) const;

 private:
  class Optimizer;
  Trainer(models::PipelineConfig config, TrainerOptions options,
          models::WeightMap weights);

  models::PipelineConfig config_;
  TrainerOptions options_;
  models::WeightMap weights_;  // leaves with requires_grad
  models::WeightMap ema_;
  std::unique_ptr<Optimizer> optimizer_;
  int64_t step_ = 0;
};

}  // namespace dserve::training

#endif  // DSERVE_TRAINING_TRAINER_H_
