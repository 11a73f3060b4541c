#include "training/trainer.h"

#include <filesystem>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include "worker/models/pipeline.h"

namespace dserve::training {
namespace {

models::PipelineConfig TinyConfig() {
  models::PipelineConfig c = models::DefaultModelConfig();
  c.dit.dim = 48;
  c.dit.ffn_dim = 96;
  c.dit.num_heads = 4;
  c.dit.num_layers = 2;
  c.text_encoder.dim = 32;
  c.text_encoder.ffn_dim = 64;
  c.text_encoder.num_layers = 1;
  c.text_encoder.max_len = 16;
  c.dit.text_dim = 32;
  c.dit.text_len = 16;
  c.prediction_type = "x0";
  return c;
}

TrainerOptions TinyOptions() {
  TrainerOptions o;
  o.width = o.height = 16;
  o.batch_size = 8;
  o.total_steps = 40;
  o.warmup_steps = 2;
  o.learning_rate = 3e-3;
  o.seed = 9;
  return o;
}

std::string TempDir(const std::string& name) {
  return testing::TempDir() + "/" + name;
}

bool SameWeights(const models::WeightMap& a, const models::WeightMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [key, t] : a) {
    if (!at::equal(t.detach(), b.at(key).detach())) return false;
  }
  return true;
}

TEST(TrainerTest, BatchesAreAPureFunctionOfSeedAndStep) {
  const TrainerOptions o = TinyOptions();
  const TrainingBatch a = MakeTrainingBatch(o, 5), b = MakeTrainingBatch(o, 5);
  EXPECT_TRUE(at::equal(a.x0, b.x0));
  EXPECT_TRUE(at::equal(a.noise, b.noise));
  EXPECT_TRUE(at::equal(a.sigma, b.sigma));
  EXPECT_EQ(a.prompts, b.prompts);
  const TrainingBatch c = MakeTrainingBatch(o, 6);
  EXPECT_FALSE(at::equal(a.x0, c.x0));
  EXPECT_LE(a.x0.max().item<float>(), 1.0f);
  EXPECT_GE(a.x0.min().item<float>(), -1.0f);
}

TEST(TrainerTest, SigmaShiftMovesNoiseLevelsUp) {
  TrainerOptions o = TinyOptions();
  o.batch_size = 512;
  const double uniform = MakeTrainingBatch(o, 0).sigma.mean().item<double>();
  o.sigma_shift = 3.0;
  const at::Tensor shifted = MakeTrainingBatch(o, 0).sigma;
  EXPECT_NEAR(uniform, 0.5, 0.05);
  EXPECT_GT(shifted.mean().item<double>(), uniform + 0.1);
  EXPECT_LT(shifted.max().item<double>(), 1.0);
  EXPECT_GE(shifted.min().item<double>(), 0.0);
}

TEST(TrainerTest, ShapePixelsCarryTheShapeLossWeight) {
  TrainerOptions o = TinyOptions();
  o.shape_loss_weight = 5.0;
  const TrainingBatch b = MakeTrainingBatch(o, 2);
  const at::Tensor w = b.loss_weight;
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{8, 1, 1, 16, 16}));
  // Only 1 and 5 occur, and every image has some of each.
  EXPECT_TRUE(at::logical_or(w.eq(1.0), w.eq(5.0)).all().item<bool>());
  const at::Tensor shape_px = w.eq(5.0).flatten(1).sum(1);
  EXPECT_TRUE(shape_px.gt(0).all().item<bool>());
  EXPECT_TRUE(shape_px.lt(16 * 16 / 2).all().item<bool>());
  // Weighted pixels are exactly where the image is not its corner colour
  // (every corner is background at this size).
  for (int i = 0; i < 8; ++i) {
    const at::Tensor img = b.x0[i].select(1, 0);  // [3, H, W]
    const at::Tensor corner = img.select(1, 15).select(1, 15).view({3, 1, 1});
    const at::Tensor differs = img.ne(corner).any(0);
    EXPECT_TRUE(at::equal(differs, w[i][0][0].eq(5.0))) << "item " << i;
  }
}

TEST(TrainerTest, LearningRateWarmsUpAndDecays) {
  TrainerOptions o = TinyOptions();
  o.total_steps = 100;
  o.warmup_steps = 10;
  o.learning_rate = 1e-3;
  o.min_lr_fraction = 0.1;
  EXPECT_NEAR(LearningRateAt(o, 0), 1e-4, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 9), 1e-3, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 10), 1e-3, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 100), 1e-4, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 500), 1e-4, 1e-12);
}

TEST(TrainerTest, RejectsBadOptionsNamingTheField) {
  TrainerOptions o = TinyOptions();
  o.width = 18;
  absl::Status st = ValidateTrainerOptions(o, TinyConfig());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("width = 18"), std::string::npos) << st;
}

TEST(TrainerTest, AFewStepsReduceTheLoss) {
  auto t = Trainer::Create(TinyConfig(), TinyOptions());
  ASSERT_TRUE(t.ok()) << t.status();
  TrainerOptions held = TinyOptions();
  held.seed = 12345;
  held.batch_size = 32;
  const TrainingBatch batch = MakeTrainingBatch(held, 0);
  absl::StatusOr<double> before = (*t)->Loss(batch, /*ema=*/false);
  ASSERT_TRUE(before.ok()) << before.status();
  for (int i = 0; i < 30; ++i) ASSERT_TRUE((*t)->Step().ok());
  absl::StatusOr<double> after = (*t)->Loss(batch, /*ema=*/false);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_LT(*after, 0.7 * *before) << "before " << *before;
  EXPECT_EQ((*t)->step(), 30);
}

TEST(TrainerTest, ResumingFromACheckpointContinuesBitForBit) {
  const std::string dir = TempDir("resume_ckpt");
  auto a = Trainer::Create(TinyConfig(), TinyOptions());
  ASSERT_TRUE(a.ok()) << a.status();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*a)->Step().ok());
  ASSERT_TRUE((*a)->SaveCheckpoint(dir).ok());
  std::vector<double> losses_a;
  for (int i = 0; i < 3; ++i) losses_a.push_back(*(*a)->Step());

  auto b = Trainer::Create(TinyConfig(), TinyOptions());
  ASSERT_TRUE(b.ok()) << b.status();
  absl::Status st = (*b)->LoadCheckpoint(dir);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ((*b)->step(), 3);
  std::vector<double> losses_b;
  for (int i = 0; i < 3; ++i) losses_b.push_back(*(*b)->Step());

  EXPECT_EQ(losses_a, losses_b);
  EXPECT_TRUE(SameWeights((*a)->weights(), (*b)->weights()));
  EXPECT_TRUE(SameWeights((*a)->ema_weights(), (*b)->ema_weights()));
  // A fresh trainer that did not resume has different weights by now.
  auto c = Trainer::Create(TinyConfig(), TinyOptions());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*c)->Step().ok());
  EXPECT_FALSE(SameWeights((*a)->weights(), (*c)->weights()));
}

TEST(TrainerTest, CheckpointOfAnotherConfigIsRefused) {
  const std::string dir = TempDir("other_ckpt");
  auto a = Trainer::Create(TinyConfig(), TinyOptions());
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->SaveCheckpoint(dir).ok());
  models::PipelineConfig other = TinyConfig();
  other.dit.ffn_dim = 48;
  auto b = Trainer::Create(other, TinyOptions());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->LoadCheckpoint(dir).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(TrainerTest, ExportLoadsAsAPipelineWithTheEmaWeights) {
  const std::string dir = TempDir("export");
  auto t = Trainer::Create(TinyConfig(), TinyOptions());
  ASSERT_TRUE(t.ok());
  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*t)->Step().ok());
  ASSERT_TRUE((*t)->Export(dir, /*ema=*/true).ok());
  auto p = models::Pipeline::LoadFromDirectory(dir);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->config().prediction_type, "x0");
  EXPECT_TRUE(SameWeights((*p)->weights(), (*t)->ema_weights()));
}

}  // namespace
}  // namespace dserve::training
