#include "worker/models/pipeline.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include "worker/models/random_weights.h"
#include "worker/models/safetensors.h"

namespace dserve::models {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<Pipeline> MakePipeline(PipelineConfig config = DefaultModelConfig()) {
  WeightMap w = RandomWeights(config, 0);
  absl::StatusOr<std::unique_ptr<Pipeline>> p =
      Pipeline::Create(std::move(config), std::move(w));
  EXPECT_TRUE(p.ok()) << p.status();
  return *std::move(p);
}

GenerationSpec Spec(std::vector<GenerationItem> items, int w = 32, int h = 24,
                    int frames = 1, int steps = 4) {
  GenerationSpec s;
  s.width = w;
  s.height = h;
  s.num_frames = frames;
  s.num_steps = steps;
  s.flow_shift = 3.0f;
  s.items = std::move(items);
  return s;
}

at::Tensor Generate(const Pipeline& p, const GenerationSpec& spec) {
  absl::StatusOr<DenoiseState> s = p.Prepare(spec);
  EXPECT_TRUE(s.ok()) << s.status();
  for (int i = 0; i < spec.num_steps; ++i) {
    absl::Status st = p.Step(*s);
    EXPECT_TRUE(st.ok()) << st;
  }
  EXPECT_EQ(s->step, spec.num_steps);
  return p.Decode(*s);
}

class PipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pipeline_ = MakePipeline().release(); }
  static void TearDownTestSuite() { delete pipeline_; }
  static Pipeline* pipeline_;
};
Pipeline* PipelineTest::pipeline_ = nullptr;

TEST_F(PipelineTest, SameSeedSameImageOtherSeedOtherImage) {
  GenerationItem a{"a red circle", "", 42, 4.0f};
  at::Tensor first = Generate(*pipeline_, Spec({a}));
  EXPECT_EQ(first.sizes(), (std::vector<int64_t>{1, 1, 24, 32, 3}));
  EXPECT_GE(first.min().item<float>(), 0.0f);
  EXPECT_LE(first.max().item<float>(), 1.0f);
  EXPECT_TRUE(at::equal(first, Generate(*pipeline_, Spec({a}))));
  GenerationItem b = a;
  b.seed = 43;
  EXPECT_FALSE(at::allclose(first, Generate(*pipeline_, Spec({b}))));
}

TEST_F(PipelineTest, BatchAndFramesShapeAndItemIndependence) {
  GenerationItem a{"blue square", "red", 7, 3.0f};
  GenerationItem b{"green triangle at the top", "", 8, 1.0f};
  at::Tensor batch = Generate(*pipeline_, Spec({a, b}, 16, 16, 3, 3));
  EXPECT_EQ(batch.sizes(), (std::vector<int64_t>{2, 3, 16, 16, 3}));
  at::Tensor alone = Generate(*pipeline_, Spec({b}, 16, 16, 3, 3));
  // Item b's noise and prediction do not depend on its batch neighbour.
  EXPECT_TRUE(at::allclose(batch[1], alone[0], 1e-4, 1e-4));
  EXPECT_FALSE(at::allclose(batch[0], batch[1]));
}

TEST_F(PipelineTest, PromptAndGuidanceChangeTheImage) {
  at::Tensor red = Generate(*pipeline_, Spec({{"red circle", "", 1, 4.0f}}));
  at::Tensor blue = Generate(*pipeline_, Spec({{"blue circle", "", 1, 4.0f}}));
  at::Tensor unguided = Generate(*pipeline_, Spec({{"red circle", "", 1, 1.0f}}));
  EXPECT_FALSE(at::allclose(red, blue));
  EXPECT_FALSE(at::allclose(red, unguided));
}

TEST_F(PipelineTest, PrepareDrawsUnitNoiseAndReportsUnknownWords) {
  absl::StatusOr<DenoiseState> s = pipeline_->Prepare(
      Spec({{"a red zebra", "blurry", 5, 2.0f}}, 64, 64, 1, 20));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->latents.sizes(), (std::vector<int64_t>{1, 3, 1, 64, 64}));
  EXPECT_NEAR(s->latents.std().item<float>(), 1.0f, 0.05f);
  EXPECT_EQ(s->sigmas.size(), 21u);
  EXPECT_DOUBLE_EQ(s->sigmas.front(), 1.0);
  EXPECT_DOUBLE_EQ(s->sigmas.back(), 0.0);
  EXPECT_THAT(s->unknown_words, ElementsAre(ElementsAre("zebra", "blurry")));
  EXPECT_EQ(s->cond_context.sizes(), (std::vector<int64_t>{1, 16, 128}));
  // The noise is at::randn from a CPU generator seeded with the item seed.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  EXPECT_TRUE(at::equal(s->latents[0], at::randn({3, 1, 64, 64}, gen)));
}

TEST_F(PipelineTest, PreviewAndStepBounds) {
  absl::StatusOr<DenoiseState> s =
      pipeline_->Prepare(Spec({{"red", "", 1, 1.0f}}, 16, 8, 2, 1));
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(pipeline_->Step(*s).ok());
  at::Tensor preview = pipeline_->Preview(*s, 0);
  EXPECT_EQ(preview.sizes(), (std::vector<int64_t>{8, 16, 3}));
  EXPECT_GE(preview.min().item<float>(), 0.0f);
  EXPECT_LE(preview.max().item<float>(), 1.0f);
  EXPECT_EQ(pipeline_->Step(*s).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(PipelineTest, ValidateSpecNamesFieldValueAndRange) {
  absl::Status st =
      pipeline_->ValidateSpec(Spec({{"red", "", 1, 1.0f}}, 65, 64));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("width"));
  EXPECT_THAT(st.message(), HasSubstr("65"));
  EXPECT_THAT(st.message(), HasSubstr("4..256, multiples of 4"));
  st = pipeline_->ValidateSpec(Spec({{"red", "", 1, 1.0f}}, 64, 260));
  EXPECT_THAT(st.message(), HasSubstr("height: 260 is out of range"));
  st = pipeline_->ValidateSpec(Spec({{"red", "", 1, 1.0f}}, 64, 64, 18));
  EXPECT_THAT(st.message(), HasSubstr("num_frames: 18"));
  EXPECT_THAT(st.message(), HasSubstr("1..17"));
  st = pipeline_->ValidateSpec(Spec({{"red", "", 1, 1.0f}}, 64, 64, 1, 0));
  EXPECT_THAT(st.message(), HasSubstr("num_inference_steps: 0"));
  st = pipeline_->ValidateSpec(Spec({}, 64, 64));
  EXPECT_THAT(st.message(), HasSubstr("batch size"));
  st = pipeline_->ValidateSpec(Spec({{"red", "", 1, -1.0f}}));
  EXPECT_THAT(st.message(), HasSubstr("guidance_scale: -1"));
  std::string many;
  for (int i = 0; i < 40; ++i) many += "blue ";
  st = pipeline_->ValidateSpec(Spec({{many, "", 1, 1.0f}}));
  EXPECT_THAT(st.message(), HasSubstr("prompt"));
  EXPECT_THAT(st.message(), HasSubstr("40 words"));
  EXPECT_TRUE(pipeline_->ValidateSpec(Spec({{"red", "", 1, 1.0f}})).ok());
  EXPECT_EQ(pipeline_->Prepare(Spec({{"red", "", 1, 1.0f}}, 65, 64))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PipelineLoadTest, LoadFromDirectoryMatchesCreate) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = tmp ? tmp : "/tmp";
  PipelineConfig config = DefaultModelConfig();
  ASSERT_TRUE(WriteConfigFile(config, dir + "/config.json").ok());
  ASSERT_TRUE(
      WriteSafetensors(RandomWeights(config, 0), dir + "/model.safetensors")
          .ok());
  absl::StatusOr<std::unique_ptr<Pipeline>> loaded =
      Pipeline::LoadFromDirectory(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  GenerationSpec spec = Spec({{"purple square", "", 9, 4.0f}}, 16, 16, 1, 2);
  EXPECT_TRUE(at::equal(Generate(**loaded, spec), Generate(*MakePipeline(), spec)));
  EXPECT_EQ(Pipeline::LoadFromDirectory(dir + "/missing").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(PipelineLoadTest, LoadFromDirectoryReadsShardedCheckpoints) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/sharded";
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  PipelineConfig config = DefaultModelConfig();
  ASSERT_TRUE(WriteConfigFile(config, dir + "/config.json").ok());
  WeightMap all = RandomWeights(config, 0), dit, text;
  std::string index = "{\"weight_map\": {";
  for (const auto& [key, t] : all) {
    const bool is_text = key.rfind("text_encoder.", 0) == 0;
    (is_text ? text : dit)[key] = t;
    index += (index.back() == '{' ? "\"" : ", \"") + key + "\": \"" +
             (is_text ? "text" : "dit") + ".safetensors\"";
  }
  index += "}}";
  ASSERT_TRUE(WriteSafetensors(dit, dir + "/dit.safetensors").ok());
  ASSERT_TRUE(WriteSafetensors(text, dir + "/text.safetensors").ok());
  std::ofstream(dir + "/model.safetensors.index.json") << index;
  absl::StatusOr<std::unique_ptr<Pipeline>> loaded =
      Pipeline::LoadFromDirectory(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  GenerationSpec spec = Spec({{"black square", "", 2, 1.0f}}, 8, 8, 1, 1);
  EXPECT_TRUE(at::equal(Generate(**loaded, spec), Generate(*MakePipeline(), spec)));
}

TEST(PipelineLoadTest, CreateNamesBadWeight) {
  PipelineConfig config = DefaultModelConfig();
  WeightMap w = RandomWeights(config, 0);
  w.erase("blocks.3.ffn.2.weight");
  absl::StatusOr<std::unique_ptr<Pipeline>> p =
      Pipeline::Create(config, std::move(w));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("blocks.3.ffn.2.weight"));
}

TEST(PipelineLoadTest, X0PredictionRunsAndIsDeterministic) {
  PipelineConfig config = DefaultModelConfig();
  config.prediction_type = "x0";
  std::unique_ptr<Pipeline> p = MakePipeline(config);
  GenerationSpec spec = Spec({{"white circle", "", 3, 2.0f}}, 16, 16, 1, 3);
  at::Tensor out = Generate(*p, spec);
  EXPECT_FALSE(at::any(at::isnan(out)).item<bool>());
  EXPECT_TRUE(at::equal(out, Generate(*p, spec)));
}

}  // namespace
}  // namespace dserve::models
