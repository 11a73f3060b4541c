#include "training/trainer.h"

#include <cmath>
#include <array>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "training/shapes.h"
#include "training/trainable_text_encoder.h"
#include "worker/models/dit.h"
#include "worker/models/random_weights.h"
#include "worker/models/safetensors.h"
#include "worker/models/text_encoder.h"
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace dserve::training {
namespace {

using models::WeightMap;

using ::dserve::CatchTorch;

constexpr char kParamPrefix[] = "param/";
constexpr char kEmaPrefix[] = "ema/";

absl::Status Invalid(const std::string& field, const std::string& value,
                     const std::string& allowed) {
  return absl::InvalidArgumentError(absl::StrCat(
      "trainer options: ", field, " = ", value, " is invalid; allowed: ",
      allowed));
}

// Mixes (seed, step) into one generator seed (splitmix64 finaliser), so
// neighbouring steps get unrelated streams.
uint64_t MixSeed(uint64_t seed, uint64_t step) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (step + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Runs text encoder + DiT on `batch` with `weights` (autograd follows the
// weights' requires_grad) and returns the MSE to the prediction target.
absl::StatusOr<at::Tensor> BatchLoss(const models::PipelineConfig& config,
                                     const WeightMap& weights,
                                     const TrainingBatch& batch) {
  ASSIGN_OR_RETURN(models::DiT dit,
                          models::DiT::Create(config.dit, weights));
  ASSIGN_OR_RETURN(at::Tensor context,
                          TrainableTextEncode(config, weights, batch.prompts));
  at::Tensor s = batch.sigma.view({-1, 1, 1, 1, 1});
  at::Tensor x = (1.0 - s) * batch.x0 + s * batch.noise;
  at::Tensor in = config.coordinate_planes ? models::AppendCoordinatePlanes(x)
                                           : x;
  at::Tensor pred = dit.Forward(in, batch.sigma * 1000.0, context);
  at::Tensor target = config.prediction_type == "x0"
                          ? batch.x0
                          : batch.noise - batch.x0;
  return (batch.loss_weight * (pred - target).pow(2)).mean();
}

std::string TmpName(const std::string& path) { return path + ".tmp"; }

absl::Status RenameInto(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::filesystem::rename(from, to, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", from, " to ", to, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

class Trainer::Optimizer {
 public:
  Optimizer(std::vector<torch::Tensor> params, const TrainerOptions& o)
      : adam(std::move(params), torch::optim::AdamWOptions(o.learning_rate)
                                    .weight_decay(o.weight_decay)) {}
  torch::optim::AdamW adam;
};

absl::Status ValidateTrainerOptions(const TrainerOptions& o,
                                    const models::PipelineConfig& config) {
  const int step = config.dit.patch[1];
  if (o.width < step || o.width % step != 0 || o.width > config.max_width) {
    return Invalid("width", absl::StrCat(o.width),
                   absl::StrCat("a multiple of ", step, " in [", step, ", ",
                                config.max_width, "]"));
  }
  if (o.height < step || o.height % step != 0 ||
      o.height > config.max_height) {
    return Invalid("height", absl::StrCat(o.height),
                   absl::StrCat("a multiple of ", step, " in [", step, ", ",
                                config.max_height, "]"));
  }
  if (o.batch_size < 1 || o.batch_size > 4096) {
    return Invalid("batch_size", absl::StrCat(o.batch_size), "[1, 4096]");
  }
  if (o.total_steps < 1) {
    return Invalid("total_steps", absl::StrCat(o.total_steps), ">= 1");
  }
  if (o.warmup_steps < 0 || o.warmup_steps > o.total_steps) {
    return Invalid("warmup_steps", absl::StrCat(o.warmup_steps),
                   absl::StrCat("[0, total_steps = ", o.total_steps, "]"));
  }
  if (!(o.learning_rate > 0 && o.learning_rate < 1)) {
    return Invalid("learning_rate", absl::StrCat(o.learning_rate), "(0, 1)");
  }
  if (!(o.min_lr_fraction >= 0 && o.min_lr_fraction <= 1)) {
    return Invalid("min_lr_fraction", absl::StrCat(o.min_lr_fraction),
                   "[0, 1]");
  }
  if (!(o.weight_decay >= 0 && o.weight_decay < 1)) {
    return Invalid("weight_decay", absl::StrCat(o.weight_decay), "[0, 1)");
  }
  if (!(o.grad_clip_norm > 0)) {
    return Invalid("grad_clip_norm", absl::StrCat(o.grad_clip_norm), "> 0");
  }
  if (!(o.ema_decay >= 0 && o.ema_decay < 1)) {
    return Invalid("ema_decay", absl::StrCat(o.ema_decay), "[0, 1)");
  }
  if (!(o.sigma_shift > 0 && o.sigma_shift <= 100)) {
    return Invalid("sigma_shift", absl::StrCat(o.sigma_shift), "(0, 100]");
  }
  if (!(o.shape_loss_weight >= 1 && o.shape_loss_weight <= 100)) {
    return Invalid("shape_loss_weight", absl::StrCat(o.shape_loss_weight),
                   "[1, 100]");
  }
  if (!(o.uncond_probability >= 0 && o.uncond_probability < 1)) {
    return Invalid("uncond_probability", absl::StrCat(o.uncond_probability),
                   "[0, 1)");
  }
  if (config.dit.out_channels != 3 || config.decoder != "pixel") {
    return Invalid("config.decoder / dit.out_channels",
                   absl::StrCat(config.decoder, " / ", config.dit.out_channels),
                   "pixel / 3 (the trainer renders RGB images)");
  }
  return absl::OkStatus();
}

TrainingBatch MakeTrainingBatch(const TrainerOptions& o, int64_t step) {
  const uint64_t stream = MixSeed(o.seed, static_cast<uint64_t>(step));
  Rng rng(stream);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(stream);
  const int64_t b = o.batch_size;
  TrainingBatch batch;
  batch.x0 = at::empty({b, 3, 1, o.height, o.width}, at::kFloat);
  batch.loss_weight = at::empty({b, 1, 1, o.height, o.width}, at::kFloat);
  std::vector<float> sigmas;
  for (int64_t i = 0; i < b; ++i) {
    Scene scene = RandomScene(rng);
    RgbImage img = RenderScene(scene, o.width, o.height);
    at::Tensor pixels =
        at::from_blob(img.rgb.data(), {o.height, o.width, 3}, at::kByte)
            .to(at::kFloat)
            .div(127.5)
            .sub(1.0)
            .permute({2, 0, 1})
            .unsqueeze(1);
    batch.x0[i].copy_(pixels);
    // The shape's pixels are those that differ from the background colour.
    const std::array<uint8_t, 3> bg = ColourRgb(scene.background);
    at::Tensor bg_pixels =
        at::tensor({bg[0], bg[1], bg[2]}, at::kFloat).div(127.5).sub(1.0);
    at::Tensor on_shape =
        pixels.ne(bg_pixels.view({3, 1, 1, 1})).any(0, /*keepdim=*/true);
    batch.loss_weight[i].copy_(
        at::where(on_shape, o.shape_loss_weight, 1.0).to(at::kFloat));
    std::string prompt = RandomPrompt(scene, rng);
    if (rng.Uniform() < o.uncond_probability) prompt.clear();
    batch.prompts.push_back(std::move(prompt));
    const double u = rng.Uniform();
    const double shift = o.sigma_shift;
    sigmas.push_back(static_cast<float>(shift * u / (1.0 + (shift - 1.0) * u)));
  }
  batch.sigma = at::tensor(sigmas, at::kFloat);
  batch.noise = at::randn({b, 3, 1, o.height, o.width}, gen,
                          at::TensorOptions().dtype(at::kFloat));
  return batch;
}

double LearningRateAt(const TrainerOptions& o, int64_t step) {
  if (step < o.warmup_steps) {
    return o.learning_rate * static_cast<double>(step + 1) / o.warmup_steps;
  }
  const double span = std::max(1, o.total_steps - o.warmup_steps);
  const double progress =
      std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return o.learning_rate *
         (o.min_lr_fraction + (1.0 - o.min_lr_fraction) * cosine);
}

Trainer::Trainer(models::PipelineConfig config, TrainerOptions options,
                 WeightMap weights)
    : config_(std::move(config)),
      options_(options),
      weights_(std::move(weights)) {}

Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    models::PipelineConfig config, TrainerOptions options) {
  RETURN_IF_ERROR(models::ValidateConfig(config));
  RETURN_IF_ERROR(ValidateTrainerOptions(options, config));
  WeightMap weights = models::RandomWeights(config, options.seed);
  weights.at("head.head.weight").zero_();
  weights.at("head.head.bias").zero_();
  std::unique_ptr<Trainer> t(
      new Trainer(std::move(config), options, std::move(weights)));
  std::vector<torch::Tensor> params;
  for (auto& [key, w] : t->weights_) {
    w.requires_grad_(true);
    params.push_back(w);
    t->ema_[key] = w.detach().clone();
  }
  t->optimizer_ = std::make_unique<Optimizer>(std::move(params), options);
  return t;
}

absl::StatusOr<double> Trainer::Step() {
  TrainingBatch batch = MakeTrainingBatch(options_, step_);
  double loss_value = 0;
  absl::Status status;
  RETURN_IF_ERROR(CatchTorch("Trainer::Step", [&] {
    const double lr = LearningRateAt(options_, step_);
    for (auto& group : optimizer_->adam.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    optimizer_->adam.zero_grad();
    absl::StatusOr<at::Tensor> loss = BatchLoss(config_, weights_, batch);
    if (!loss.ok()) {
      status = loss.status();
      return;
    }
    loss->backward();
    loss_value = loss->item<double>();
    std::vector<torch::Tensor> params;
    for (auto& [key, w] : weights_) params.push_back(w);
    torch::nn::utils::clip_grad_norm_(params, options_.grad_clip_norm);
    optimizer_->adam.step();
    torch::NoGradGuard no_grad;
    const double k = static_cast<double>(step_);
    const double decay = std::min(options_.ema_decay, (1.0 + k) / (10.0 + k));
    for (auto& [key, w] : weights_) {
      ema_.at(key).mul_(decay).add_(w.detach(), 1.0 - decay);
    }
  }));
  RETURN_IF_ERROR(status);
  if (!std::isfinite(loss_value)) {
    return absl::InternalError(absl::StrCat(
        "Trainer::Step: loss is ", loss_value, " at step ", step_,
        "; lower learning_rate (", options_.learning_rate, ")"));
  }
  ++step_;
  return loss_value;
}

absl::StatusOr<double> Trainer::Loss(const TrainingBatch& batch,
                                     bool ema) const {
  double value = 0;
  absl::Status status;
  RETURN_IF_ERROR(CatchTorch("Trainer::Loss", [&] {
    torch::NoGradGuard no_grad;
    absl::StatusOr<at::Tensor> loss =
        BatchLoss(config_, ema ? ema_ : weights_, batch);
    if (!loss.ok()) {
      status = loss.status();
      return;
    }
    value = loss->item<double>();
  }));
  RETURN_IF_ERROR(status);
  return value;
}

absl::Status Trainer::SaveCheckpoint(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  WeightMap all;
  for (const auto& [key, w] : weights_) {
    all[kParamPrefix + key] = w.detach();
  }
  for (const auto& [key, w] : ema_) all[kEmaPrefix + key] = w;
  const std::string ckpt = dir + "/checkpoint.safetensors";
  const std::string opt = dir + "/optimizer.pt";
  RETURN_IF_ERROR(models::WriteSafetensors(
      all, TmpName(ckpt),
      {{"step", absl::StrCat(step_)},
       {"seed", absl::StrCat(options_.seed)},
       {"config", models::ConfigToJson(config_)}}));
  RETURN_IF_ERROR(CatchTorch("Trainer::SaveCheckpoint", [&] {
    torch::save(optimizer_->adam, TmpName(opt));
  }));
  RETURN_IF_ERROR(RenameInto(TmpName(ckpt), ckpt));
  return RenameInto(TmpName(opt), opt);
}

absl::Status Trainer::LoadCheckpoint(const std::string& dir) {
  const std::string ckpt = dir + "/checkpoint.safetensors";
  ASSIGN_OR_RETURN(WeightMap all, models::ReadSafetensors(ckpt));
  ASSIGN_OR_RETURN(auto meta, models::ReadSafetensorsMetadata(ckpt));
  auto step_it = meta.find("step");
  if (step_it == meta.end()) {
    return absl::DataLossError(
        absl::StrCat(ckpt, ": metadata has no \"step\""));
  }
  auto config_it = meta.find("config");
  if (config_it == meta.end() ||
      config_it->second != models::ConfigToJson(config_)) {
    return absl::FailedPreconditionError(absl::StrCat(
        ckpt, ": was written for a different model config; start a new run "
              "or pass the config it was trained with"));
  }
  for (const auto& [key, w] : weights_) {
    auto p = all.find(kParamPrefix + key);
    auto e = all.find(kEmaPrefix + key);
    if (p == all.end() || e == all.end() || p->second.sizes() != w.sizes() ||
        e->second.sizes() != w.sizes()) {
      return absl::DataLossError(absl::StrCat(
          ckpt, ": missing or mis-shaped weight or EMA for \"", key, "\""));
    }
  }
  RETURN_IF_ERROR(CatchTorch("Trainer::LoadCheckpoint", [&] {
    torch::NoGradGuard no_grad;
    for (auto& [key, w] : weights_) {
      w.copy_(all.at(kParamPrefix + key));
      ema_.at(key).copy_(all.at(kEmaPrefix + key));
    }
    torch::load(optimizer_->adam, dir + "/optimizer.pt");
  }));
  step_ = std::stoll(step_it->second);
  return absl::OkStatus();
}

absl::Status Trainer::Export(const std::string& dir, bool ema) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  WeightMap out;
  for (const auto& [key, w] : ema ? ema_ : weights_) {
    out[key] = w.detach().contiguous();
  }
  RETURN_IF_ERROR(models::WriteConfigFile(config_, dir + "/config.json"));
  return models::WriteSafetensors(
      out, dir + "/model.safetensors",
      {{"step", absl::StrCat(step_)},
       {"seed", absl::StrCat(options_.seed)},
       {"weights", ema ? "ema" : "raw"}});
}

}  // namespace dserve::training
