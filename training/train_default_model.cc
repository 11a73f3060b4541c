// Trains the default shapes model and exports it for Pipeline::
// LoadFromDirectory. Resumable: with --resume, an existing checkpoint in
// --checkpoint_dir is loaded and training continues bit for bit.
//
//   train_default_model --threads=1 --steps=3000 --batch_size=32
//       --checkpoint_dir=/tmp/ckpt --export_dir=/tmp/model --resume
//
// The model starts from DefaultModelConfig() with the shape flags below
// applied, so the shipped config is exactly what was trained.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "common/blas_kernels.h"
#include "training/trainer.h"
#include "worker/models/model_config.h"
#include <ATen/Parallel.h>

ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads (1 or 2 here).");
ABSL_FLAG(uint64_t, seed, 1, "Seed for init, data and noise.");
ABSL_FLAG(int, steps, 2000, "Optimisation steps (also the LR schedule).");
ABSL_FLAG(int, batch_size, 32, "Images per step.");
ABSL_FLAG(int, size, 32, "Training image width and height.");
ABSL_FLAG(double, lr, 1e-3, "Peak AdamW learning rate.");
ABSL_FLAG(int, warmup_steps, 100, "Linear warm-up steps.");
ABSL_FLAG(double, ema_decay, 0.995, "EMA decay.");
ABSL_FLAG(double, sigma_shift, 1.0, "Shift of the training noise levels "
          "(1 = uniform).");
ABSL_FLAG(double, shape_loss_weight, 1.0, "Loss weight of shape pixels.");
ABSL_FLAG(double, uncond_probability, 0.1, "Prompt dropout for CFG.");
ABSL_FLAG(int, dim, 128, "DiT width.");
ABSL_FLAG(int, ffn_dim, 512, "DiT FFN width.");
ABSL_FLAG(int, num_heads, 4, "DiT heads.");
ABSL_FLAG(int, num_layers, 4, "DiT blocks.");
ABSL_FLAG(int, patch, 4, "Spatial patch size.");
ABSL_FLAG(int, text_dim, 128, "Text encoder width (= DiT text_dim).");
ABSL_FLAG(int, text_layers, 2, "Text encoder layers.");
ABSL_FLAG(int, text_len, 16, "Text tokens (= DiT text_len).");
ABSL_FLAG(std::string, prediction_type, "x0", "\"x0\" or \"flow_velocity\".");
ABSL_FLAG(std::string, checkpoint_dir, "/tmp/dserve_default_model_ckpt",
          "Where checkpoints go.");
ABSL_FLAG(std::string, export_dir, "", "Where config.json and "
          "model.safetensors (EMA weights) go at the end; empty = skip.");
ABSL_FLAG(bool, resume, false, "Continue from --checkpoint_dir if present.");
ABSL_FLAG(int, checkpoint_every, 100, "Steps between checkpoints.");
ABSL_FLAG(int, log_every, 10, "Steps between progress lines.");
ABSL_FLAG(bool, export_only, false, "Load the checkpoint in "
          "--checkpoint_dir, export it to --export_dir and exit.");
ABSL_FLAG(double, max_minutes, 0, "Stop (checkpoint + export) after this "
          "much wall time; 0 = no limit.");

namespace dserve::training {
namespace {

models::PipelineConfig ConfigFromFlags() {
  models::PipelineConfig c = models::DefaultModelConfig();
  c.dit.dim = absl::GetFlag(FLAGS_dim);
  c.dit.ffn_dim = absl::GetFlag(FLAGS_ffn_dim);
  c.dit.num_heads = absl::GetFlag(FLAGS_num_heads);
  c.dit.num_layers = absl::GetFlag(FLAGS_num_layers);
  const int p = absl::GetFlag(FLAGS_patch);
  c.dit.patch = {1, p, p};
  c.size_step = p;
  c.text_encoder.dim = absl::GetFlag(FLAGS_text_dim);
  c.text_encoder.ffn_dim = 4 * c.text_encoder.dim;
  c.text_encoder.num_layers = absl::GetFlag(FLAGS_text_layers);
  c.text_encoder.max_len = absl::GetFlag(FLAGS_text_len);
  c.dit.text_dim = c.text_encoder.dim;
  c.dit.text_len = c.text_encoder.max_len;
  c.prediction_type = absl::GetFlag(FLAGS_prediction_type);
  c.default_width = c.default_height = absl::GetFlag(FLAGS_size);
  c.description = absl::StrFormat(
      "Small pixel-space Wan2.1-style DiT (dim %d, %d layers, %d heads, "
      "patch %d) trained by dserve on procedural coloured circles, squares "
      "and triangles at %dx%d.",
      c.dit.dim, c.dit.num_layers, c.dit.num_heads, p, c.default_width,
      c.default_height);
  return c;
}

std::string Duration(double seconds) {
  const int s = static_cast<int>(seconds);
  return absl::StrFormat("%dh%02dm%02ds", s / 3600, (s / 60) % 60, s % 60);
}

int Run() {
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  TrainerOptions o;
  o.seed = absl::GetFlag(FLAGS_seed);
  o.total_steps = absl::GetFlag(FLAGS_steps);
  o.batch_size = absl::GetFlag(FLAGS_batch_size);
  o.width = o.height = absl::GetFlag(FLAGS_size);
  o.learning_rate = absl::GetFlag(FLAGS_lr);
  o.warmup_steps = absl::GetFlag(FLAGS_warmup_steps);
  o.ema_decay = absl::GetFlag(FLAGS_ema_decay);
  o.uncond_probability = absl::GetFlag(FLAGS_uncond_probability);
  o.sigma_shift = absl::GetFlag(FLAGS_sigma_shift);
  o.shape_loss_weight = absl::GetFlag(FLAGS_shape_loss_weight);
  auto trainer = Trainer::Create(ConfigFromFlags(), o);
  if (!trainer.ok()) {
    std::fprintf(stderr, "%s\n", trainer.status().ToString().c_str());
    return 1;
  }
  Trainer& t = **trainer;
  const std::string ckpt = absl::GetFlag(FLAGS_checkpoint_dir);
  if (absl::GetFlag(FLAGS_resume) &&
      std::filesystem::exists(ckpt + "/checkpoint.safetensors")) {
    absl::Status st = t.LoadCheckpoint(ckpt);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    std::printf("resumed from %s at step %lld\n", ckpt.c_str(),
                static_cast<long long>(t.step()));
  }
  if (absl::GetFlag(FLAGS_export_only)) {
    absl::Status st = t.LoadCheckpoint(ckpt);
    if (st.ok()) st = t.Export(absl::GetFlag(FLAGS_export_dir), /*ema=*/true);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    std::printf("exported EMA weights of step %lld to %s\n",
                static_cast<long long>(t.step()),
                absl::GetFlag(FLAGS_export_dir).c_str());
    return 0;
  }
  // A fixed held-out batch (a seed the training stream never uses).
  TrainerOptions held_out = o;
  held_out.seed = o.seed ^ 0xABCDEF12345ull;
  held_out.batch_size = 64;
  held_out.uncond_probability = 0;
  const TrainingBatch eval_batch = MakeTrainingBatch(held_out, 0);

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const int64_t first = t.step();
  const double max_seconds = absl::GetFlag(FLAGS_max_minutes) * 60.0;
  double loss_sum = 0;
  int loss_count = 0;
  bool stop = false;
  while (t.step() < o.total_steps && !stop) {
    absl::StatusOr<double> loss = t.Step();
    if (!loss.ok()) {
      std::fprintf(stderr, "%s\n", loss.status().ToString().c_str());
      return 1;
    }
    loss_sum += *loss;
    ++loss_count;
    const double elapsed =
        std::chrono::duration<double>(Clock::now() - start).count();
    stop = max_seconds > 0 && elapsed >= max_seconds;
    const int64_t k = t.step();
    if (k % absl::GetFlag(FLAGS_log_every) == 0 || stop ||
        k == o.total_steps) {
      const double per_step = elapsed / static_cast<double>(k - first);
      std::printf("step %lld/%d loss %.4f lr %.2e %.2fs/step elapsed %s "
                  "eta %s\n",
                  static_cast<long long>(k), o.total_steps,
                  loss_sum / loss_count, LearningRateAt(o, k - 1), per_step,
                  Duration(elapsed).c_str(),
                  Duration(per_step * (o.total_steps - k)).c_str());
      std::fflush(stdout);
      loss_sum = 0;
      loss_count = 0;
    }
    if (k % absl::GetFlag(FLAGS_checkpoint_every) == 0 || stop ||
        k == o.total_steps) {
      absl::Status st = t.SaveCheckpoint(ckpt);
      if (!st.ok()) {
        std::fprintf(stderr, "%s\n", st.ToString().c_str());
        return 1;
      }
      absl::StatusOr<double> raw = t.Loss(eval_batch, /*ema=*/false);
      absl::StatusOr<double> ema = t.Loss(eval_batch, /*ema=*/true);
      std::printf("checkpoint step %lld held-out loss raw %.4f ema %.4f\n",
                  static_cast<long long>(k), raw.ok() ? *raw : -1.0,
                  ema.ok() ? *ema : -1.0);
      std::fflush(stdout);
    }
  }
  const std::string export_dir = absl::GetFlag(FLAGS_export_dir);
  if (!export_dir.empty()) {
    absl::Status st = t.Export(export_dir, /*ema=*/true);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    std::printf("exported EMA weights of step %lld to %s\n",
                static_cast<long long>(t.step()), export_dir.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace dserve::training

int main(int argc, char** argv) {
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  absl::ParseCommandLine(argc, argv);
  return dserve::training::Run();
}
