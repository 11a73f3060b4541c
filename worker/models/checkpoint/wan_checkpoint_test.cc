#include "worker/models/checkpoint/wan_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "worker/models/checkpoint/test_util.h"
#include "worker/models/checkpoint/wan_key_maps.h"
#include "worker/models/safetensors.h"

namespace dserve::models::checkpoint {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kTool[] = "tools/wan/make_wan_checkpoint.py";
constexpr char kSpiece[] = "worker/models/text/testdata/umt5_test_spm.model";

// Writes random-weight checkpoints with tools/wan/make_wan_checkpoint.py
// (Debian python3-torch) once for the suite.
class WanCheckpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(testing::FreshDir("wan_ckpt"));
    Make("--preset=tiny --layout=both --seed=3 --dtype=bf16", "tiny");
    Make("--preset=tiny --layout=both --seed=3 --dtype=bf16 --shard_mb=0.05",
         "sharded");
    Make("--preset=tiny --layout=wan --seed=4 --dtype=fp16", "fp16");
    Make("--preset=tiny --layout=diffusers --seed=5 --dtype=fp32 "
         "--dit_dim=96 --dit_heads=2 --dit_layers=3 --text_len=64 "
         "--t5_dim=48 --t5_layers=3 --vae_base=4",
         "custom");
  }
  static void Make(const std::string& args, const std::string& name) {
    std::string out;
    ASSERT_EQ(testing::RunPython(kTool,
                                 absl::StrCat(args, " --spiece=", kSpiece,
                                              " --out=", Dir(name)),
                                 &out),
              0)
        << out;
  }
  static std::string Dir(const std::string& name) {
    return *root_ + "/" + name;
  }
  // A writable copy of a generated checkpoint.
  static std::string Copy(const std::string& from, const std::string& to) {
    fs::remove_all(Dir(to));
    fs::copy(Dir(from), Dir(to), fs::copy_options::recursive);
    return Dir(to);
  }
  static std::string* root_;
};
std::string* WanCheckpointTest::root_ = nullptr;

void ExpectSameMaps(const WeightMap& a, const WeightMap& b,
                    const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [key, t] : a) {
    ASSERT_TRUE(b.count(key)) << what << ": " << key;
    EXPECT_EQ(t.scalar_type(), b.at(key).scalar_type()) << key;
    EXPECT_TRUE(at::equal(t, b.at(key))) << what << ": " << key;
  }
}

void ExpectSameConfig(const DiTConfig& a, const DiTConfig& b) {
  EXPECT_EQ(a.in_channels, b.in_channels);
  EXPECT_EQ(a.out_channels, b.out_channels);
  EXPECT_EQ(a.patch, b.patch);
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.ffn_dim, b.ffn_dim);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.freq_dim, b.freq_dim);
  EXPECT_EQ(a.text_dim, b.text_dim);
  EXPECT_EQ(a.text_len, b.text_len);
  EXPECT_EQ(a.eps, b.eps);
}

TEST_F(WanCheckpointTest, BothLayoutsLoadTheSameWeightsAndConfig) {
  absl::StatusOr<WanCheckpoint> wan = LoadWanCheckpoint(Dir("tiny/wan"));
  ASSERT_TRUE(wan.ok()) << wan.status();
  absl::StatusOr<WanCheckpoint> dif = LoadWanCheckpoint(Dir("tiny/diffusers"));
  ASSERT_TRUE(dif.ok()) << dif.status();
  EXPECT_EQ(wan->layout, "wan");
  EXPECT_EQ(dif->layout, "diffusers");
  ExpectSameConfig(wan->dit_config, dif->dit_config);
  // The contract's `pipeline` sizes.
  const DiTConfig& c = wan->dit_config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.ffn_dim, 128);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.text_dim, 32);
  EXPECT_EQ(c.text_len, 128);
  EXPECT_EQ(c.freq_dim, 256);
  EXPECT_EQ(c.patch, (std::array<int, 3>{1, 2, 2}));
  ExpectSameMaps(wan->dit, dif->dit, "dit");
  ExpectSameMaps(wan->t5, dif->t5, "t5");
  ExpectSameMaps(wan->vae, dif->vae, "vae");
  EXPECT_EQ(wan->dit.size(), 27u * 2 + 15);  // 27 per block + 15 others
  EXPECT_EQ(wan->t5.size(), 22u);
  EXPECT_EQ(wan->vae.size(), 194u);
  EXPECT_EQ(wan->dit.at("head.head.weight").scalar_type(), at::kBFloat16);
  EXPECT_EQ(wan->t5.at("token_embedding.weight").sizes(),
            at::IntArrayRef({300, 32}));
  EXPECT_TRUE(fs::exists(wan->spiece_model_path));
  EXPECT_TRUE(fs::exists(dif->spiece_model_path));
  EXPECT_THAT(wan->spiece_model_path, HasSubstr("google/umt5-xxl/spiece.model"));
  EXPECT_THAT(dif->spiece_model_path, HasSubstr("tokenizer/spiece.model"));
  EXPECT_EQ(dif->scheduler.class_name, "UniPCMultistepScheduler");
  EXPECT_EQ(dif->scheduler.flow_shift, 3.0);
  EXPECT_EQ(dif->scheduler.solver_order, 2);
  EXPECT_FALSE(wan->scheduler.flow_shift.has_value());
  // Every weight is random: no all-zero tensor, norm gains not all ones.
  for (const auto* m : {&wan->dit, &wan->t5, &wan->vae}) {
    for (const auto& [key, t] : *m) {
      EXPECT_TRUE(t.ne(0).any().item<bool>()) << key;
      EXPECT_FALSE(t.eq(1).all().item<bool>()) << key;
    }
  }
}

TEST_F(WanCheckpointTest, ShardedLayoutsLoadTheSameWeights) {
  ASSERT_TRUE(fs::exists(
      Dir("sharded/wan/diffusion_pytorch_model.safetensors.index.json")));
  ASSERT_TRUE(fs::exists(Dir("sharded/diffusers/text_encoder/"
                             "model.safetensors.index.json")));
  int shards = 0;
  for (const auto& e :
       fs::directory_iterator(Dir("sharded/diffusers/transformer"))) {
    const std::string name = e.path().filename().string();
    if (name.rfind("diffusion_pytorch_model-0000", 0) == 0) ++shards;
  }
  EXPECT_GE(shards, 2);
  absl::StatusOr<WanCheckpoint> plain = LoadWanCheckpoint(Dir("tiny/wan"));
  ASSERT_TRUE(plain.ok()) << plain.status();
  for (const char* layout : {"sharded/wan", "sharded/diffusers"}) {
    absl::StatusOr<WanCheckpoint> sharded = LoadWanCheckpoint(Dir(layout));
    ASSERT_TRUE(sharded.ok()) << sharded.status();
    EXPECT_THAT(sharded->dit_file, HasSubstr(".index.json"));
    ExpectSameMaps(plain->dit, sharded->dit, layout);
    ExpectSameMaps(plain->t5, sharded->t5, layout);
  }
}

TEST_F(WanCheckpointTest, Fp16AndFp32AndOtherSizes) {
  absl::StatusOr<WanCheckpoint> half = LoadWanCheckpoint(Dir("fp16"));
  ASSERT_TRUE(half.ok()) << half.status();
  EXPECT_EQ(half->dit.at("blocks.0.ffn.0.weight").scalar_type(), at::kHalf);
  EXPECT_EQ(half->t5.at("norm.weight").scalar_type(), at::kHalf);
  EXPECT_EQ(half->vae.at("conv2.weight").scalar_type(), at::kHalf);
  absl::StatusOr<WanCheckpoint> custom = LoadWanCheckpoint(Dir("custom"));
  ASSERT_TRUE(custom.ok()) << custom.status();
  EXPECT_EQ(custom->dit_config.dim, 96);
  EXPECT_EQ(custom->dit_config.num_heads, 2);
  EXPECT_EQ(custom->dit_config.num_layers, 3);
  EXPECT_EQ(custom->dit_config.text_dim, 48);
  EXPECT_EQ(custom->dit_config.text_len, 64);
  EXPECT_EQ(custom->dit.at("blocks.2.norm3.weight").scalar_type(), at::kFloat);
  EXPECT_EQ(custom->vae.at("decoder.head.2.weight").size(1), 4);
}

TEST_F(WanCheckpointTest, DiTKeyFilterLoadsOnlyWhatARankNeeds) {
  WanLoadOptions options;
  options.dit_keys = [](const std::string& key) {
    return key.rfind("blocks.1.", 0) == 0;
  };
  options.load_text_encoder = false;
  options.load_vae = false;
  for (const char* layout : {"sharded/wan", "sharded/diffusers"}) {
    absl::StatusOr<WanCheckpoint> part = LoadWanCheckpoint(Dir(layout), options);
    ASSERT_TRUE(part.ok()) << part.status();
    EXPECT_EQ(part->dit.size(), 27u) << layout;
    for (const auto& [key, t] : part->dit) {
      EXPECT_EQ(key.rfind("blocks.1.", 0), 0u) << key;
    }
    EXPECT_TRUE(part->t5.empty());
    EXPECT_TRUE(part->vae.empty());
    EXPECT_EQ(part->dit_config.text_dim, 32);
  }
}

TEST_F(WanCheckpointTest, MisShapedOrMissingDiTTensorNamesFileAndKey) {
  // Wan layout: a mis-shaped tensor.
  const std::string dir = Copy("tiny/wan", "bad_shape");
  const std::string file = dir + "/diffusion_pytorch_model.safetensors";
  absl::StatusOr<WeightMap> w = ReadSafetensors(file);
  ASSERT_TRUE(w.ok());
  WeightMap edited;
  for (const auto& [k, t] : *w) edited[k] = t.clone();
  edited["blocks.1.cross_attn.k.weight"] = at::zeros({64, 63}, at::kBFloat16);
  w = WeightMap();
  fs::remove(file);
  ASSERT_TRUE(WriteSafetensors(edited, file).ok());
  absl::StatusOr<WanCheckpoint> r = LoadWanCheckpoint(dir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(file));
  EXPECT_THAT(r.status().message(), HasSubstr("\"blocks.1.cross_attn.k.weight\""));
  EXPECT_THAT(r.status().message(), HasSubstr("[64, 63]"));

  // diffusers layout: a missing tensor is named as the file names it.
  const std::string ddir = Copy("tiny/diffusers", "missing_key");
  const std::string dfile = ddir + "/transformer/diffusion_pytorch_model.safetensors";
  absl::StatusOr<WeightMap> d = ReadSafetensors(dfile);
  ASSERT_TRUE(d.ok());
  WeightMap less;
  for (const auto& [k, t] : *d) {
    if (k != "blocks.0.norm2.bias") less[k] = t.clone();
  }
  d = WeightMap();
  fs::remove(dfile);
  ASSERT_TRUE(WriteSafetensors(less, dfile).ok());
  r = LoadWanCheckpoint(ddir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(dfile));
  EXPECT_THAT(r.status().message(), HasSubstr("\"blocks.0.norm2.bias\""));
  EXPECT_THAT(r.status().message(), HasSubstr("blocks.0.norm3.bias"));
}

TEST_F(WanCheckpointTest, MissingT5TensorAndUnknownKeyAreNamed) {
  const std::string dir = Copy("tiny/diffusers", "t5_missing");
  const std::string file = dir + "/text_encoder/model.safetensors";
  absl::StatusOr<WeightMap> w = ReadSafetensors(file);
  ASSERT_TRUE(w.ok());
  WeightMap less;
  for (const auto& [k, t] : *w) {
    if (k != "encoder.block.1.layer.1.DenseReluDense.wo.weight") {
      less[k] = t.clone();
    }
  }
  w = WeightMap();
  fs::remove(file);
  ASSERT_TRUE(WriteSafetensors(less, file).ok());
  absl::StatusOr<WanCheckpoint> r = LoadWanCheckpoint(dir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(file));
  EXPECT_THAT(r.status().message(),
              HasSubstr("encoder.block.1.layer.1.DenseReluDense.wo.weight"));

  // An extra, unknown tensor in the VAE file.
  const std::string vdir = Copy("tiny/diffusers", "vae_unknown");
  const std::string vfile = vdir + "/vae/diffusion_pytorch_model.safetensors";
  absl::StatusOr<WeightMap> v = ReadSafetensors(vfile);
  ASSERT_TRUE(v.ok());
  WeightMap more;
  for (const auto& [k, t] : *v) more[k] = t.clone();
  more["decoder.up_blocks.0.extra.weight"] = at::zeros({1});
  v = WeightMap();
  fs::remove(vfile);
  ASSERT_TRUE(WriteSafetensors(more, vfile).ok());
  r = LoadWanCheckpoint(vdir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(vfile));
  EXPECT_THAT(r.status().message(), HasSubstr("decoder.up_blocks.0.extra.weight"));
}

TEST_F(WanCheckpointTest, MissingFilesAndEscapingShardsAreRefused) {
  const std::string dir = Copy("tiny/wan", "no_vae");
  fs::remove(dir + "/Wan2.1_VAE.pth");
  absl::StatusOr<WanCheckpoint> r = LoadWanCheckpoint(dir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("Wan2.1_VAE.pth"));

  const std::string sdir = Copy("sharded/diffusers", "escape");
  const std::string index =
      sdir + "/transformer/diffusion_pytorch_model.safetensors.index.json";
  std::ofstream(index, std::ios::trunc)
      << R"({"weight_map": {"proj_out.weight": "../../tiny/wan/diffusion_pytorch_model.safetensors"}})";
  r = LoadWanCheckpoint(sdir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("../../tiny/wan"));

  EXPECT_EQ(LoadWanCheckpoint(*root_).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dserve::models::checkpoint
