// A rank materialises exactly its share of the DiT (names, shapes, bytes),
// cut from memory-mapped views: the same bits as the full load sliced, and
// the pages it read leave the RSS.

#include "worker/models/dit_share.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parallel/device_mesh.h"
#include "worker/models/checkpoint/mapped_file.h"
#include "worker/models/dit.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"
#include "worker/models/safetensors.h"

namespace dserve::models {
namespace {

using ::testing::HasSubstr;

// 3 layers (so pp=2 stages differ in size), dim 64, 4 heads, ffn 96.
PipelineConfig SmallConfig() {
  PipelineConfig c = DefaultModelConfig();
  c.dit.dim = 64;
  c.dit.num_heads = 4;
  c.dit.num_layers = 3;
  c.dit.ffn_dim = 96;
  return c;
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

// The DiT weights of `config` in bf16 (what checkpoints ship), written to a
// safetensors file and read back as memory-mapped views.
WeightMap MappedBf16Weights(const PipelineConfig& config,
                            const std::string& name) {
  WeightMap bf16;
  for (const auto& [key, t] : RandomWeights(config, 7)) {
    if (!absl::StartsWith(key, "text_encoder.")) {
      bf16[key] = t.to(at::kBFloat16);
    }
  }
  const std::string path = TempPath(name);
  EXPECT_TRUE(WriteSafetensors(bf16, path).ok());
  absl::StatusOr<WeightMap> mapped = ReadSafetensors(path);
  EXPECT_TRUE(mapped.ok()) << mapped.status();
  return mapped.ok() ? *mapped : WeightMap();
}

std::set<std::string> Keys(const std::vector<ShareWeight>& weights) {
  std::set<std::string> keys;
  for (const ShareWeight& w : weights) keys.insert(w.key);
  return keys;
}

std::set<std::string> ExpectedKeys(const DiTConfig& c,
                                   const std::vector<int>& layers, bool head) {
  std::set<std::string> keys;
  for (const auto& [key, shape] : DiTWeightShapes(c)) {
    const bool block = absl::StartsWith(key, "blocks.");
    if (block) {
      for (int layer : layers) {
        if (absl::StartsWith(key, absl::StrCat("blocks.", layer, "."))) {
          keys.insert(key);
        }
      }
    } else if (absl::StartsWith(key, "head.")) {
      if (head) keys.insert(key);
    } else {
      keys.insert(key);  // embeddings: every rank
    }
  }
  return keys;
}

const ShareWeight& Find(const std::vector<ShareWeight>& weights,
                        const std::string& key) {
  for (const ShareWeight& w : weights) {
    if (w.key == key) return w;
  }
  ADD_FAILURE() << "no " << key;
  static const ShareWeight kNone;
  return kNone;
}

TEST(DiTShareTest, ForRankReadsPpAndTpCoordinates) {
  parallel::MeshDegrees d;
  d.cfg = 2;
  d.pp = 2;
  d.tp = 2;
  auto mesh = parallel::DeviceMesh::Create(d, {0, 1, 2, 3, 4, 5, 6, 7});
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  // rank = (cfg * pp + pp_stage) * tp + tp_rank
  auto s = DiTShareForRank(*mesh, 7);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, (DiTShare{1, 2, 1, 2}));
  EXPECT_EQ(*DiTShareForRank(*mesh, 2), (DiTShare{1, 2, 0, 2}));
  EXPECT_FALSE(DiTShareForRank(*mesh, 8).ok());
}

TEST(DiTShareTest, RejectsSharesTheModelCannotSplit) {
  const DiTConfig c = SmallConfig().dit;
  EXPECT_THAT(std::string(ValidateDiTShare(c, {0, 4, 0, 1}).message()),
              HasSubstr("num_layers = 3"));
  EXPECT_THAT(std::string(ValidateDiTShare(c, {0, 1, 0, 3}).message()),
              HasSubstr("tp = 3 does not divide num_heads = 4"));
  EXPECT_TRUE(ValidateDiTShare(c, {2, 3, 3, 4}).ok());
}

TEST(DiTShareTest, PipelineStagesKeepTheirBlocksAndTheLastTheHead) {
  const DiTConfig c = SmallConfig().dit;
  auto first = DiTShareWeights(c, {0, 2, 0, 1});
  auto last = DiTShareWeights(c, {1, 2, 0, 1});
  auto whole = DiTShareWeights(c, {});
  ASSERT_TRUE(first.ok() && last.ok() && whole.ok());
  // StageLayers(3, s, 2): [0, 2) and [2, 3).
  EXPECT_EQ(Keys(*first), ExpectedKeys(c, {0, 1}, false));
  EXPECT_EQ(Keys(*last), ExpectedKeys(c, {2}, true));
  EXPECT_EQ(Keys(*whole), ExpectedKeys(c, {0, 1, 2}, true));
  for (const auto* weights : {&*first, &*last}) {
    for (const ShareWeight& w : *weights) {
      EXPECT_EQ(w.dim, -1) << w.key;  // no TP: whole tensors
    }
  }
}

TEST(DiTShareTest, TensorParallelRanksKeepTheirColumnAndRowSlices) {
  const DiTConfig c = SmallConfig().dit;  // dim 64, ffn 96
  auto r1 = DiTShareWeights(c, {1, 2, 1, 2});
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(Keys(*r1), ExpectedKeys(c, {2}, true));
  struct Want {
    const char* key;
    std::vector<int64_t> shape;
    int dim;
    int64_t begin;
  };
  for (const Want& want : std::vector<Want>{
           {"blocks.2.self_attn.q.weight", {32, 64}, 0, 32},
           {"blocks.2.self_attn.q.bias", {32}, 0, 32},
           {"blocks.2.cross_attn.v.weight", {32, 64}, 0, 32},
           {"blocks.2.self_attn.o.weight", {64, 32}, 1, 32},
           {"blocks.2.self_attn.o.bias", {64}, -1, 0},
           {"blocks.2.cross_attn.norm_k.weight", {32}, 0, 32},
           {"blocks.2.ffn.0.weight", {48, 64}, 0, 48},
           {"blocks.2.ffn.0.bias", {48}, 0, 48},
           {"blocks.2.ffn.2.weight", {64, 48}, 1, 48},
           {"blocks.2.ffn.2.bias", {64}, -1, 0},
           {"blocks.2.modulation", {1, 6, 64}, -1, 0},
           {"blocks.2.norm3.weight", {64}, -1, 0},
           {"head.head.weight", {c.out_channels * c.patch_volume(), 64}, -1, 0},
       }) {
    const ShareWeight& w = Find(*r1, want.key);
    EXPECT_EQ(w.shape, want.shape) << want.key;
    EXPECT_EQ(w.dim, want.dim) << want.key;
    EXPECT_EQ(w.begin, want.begin) << want.key;
  }
}

// Every share of pp=2 x tp=2 over mapped bf16 views: the kept tensors are the
// full fp32 load sliced, bit for bit, and the DiT and TP blocks built from
// them hold exactly those bytes (DiTShareSize).
TEST(DiTShareTest, ShardedLoadEqualsFullLoadThenSlice) {
  const PipelineConfig config = SmallConfig();
  const DiTConfig& c = config.dit;
  const WeightMap mapped = MappedBf16Weights(config, "share_equal.safetensors");
  for (const DiTShare share :
       {DiTShare{}, DiTShare{0, 2, 0, 1}, DiTShare{1, 2, 0, 1},
        DiTShare{0, 1, 1, 2}, DiTShare{0, 2, 1, 2}, DiTShare{1, 2, 0, 2}}) {
    SCOPED_TRACE(DiTShareString(share));
    auto kept = MaterialiseDiTShare(c, mapped, {}, share);
    ASSERT_TRUE(kept.ok()) << kept.status();
    auto weights = DiTShareWeights(c, share);
    ASSERT_TRUE(weights.ok());
    ASSERT_EQ(kept->size(), weights->size());
    for (const ShareWeight& w : *weights) {
      const at::Tensor& got = kept->at(w.key);
      // The full load: the whole tensor in fp32, in owned memory.
      at::Tensor full = mapped.at(w.key).to(at::kFloat).clone();
      at::Tensor want =
          w.dim >= 0 ? full.narrow(w.dim, w.begin, w.shape[w.dim]) : full;
      EXPECT_EQ(got.sizes().vec(), w.shape) << w.key;
      EXPECT_EQ(got.scalar_type(), at::kFloat) << w.key;
      EXPECT_TRUE(got.is_contiguous()) << w.key;
      EXPECT_TRUE(at::equal(got, want)) << w.key;
    }
    auto shard = LoadDiTShard(c, mapped, {}, share);
    ASSERT_TRUE(shard.ok()) << shard.status();
    auto size = DiTShareSize(c, share, at::kFloat);
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(shard->weight_bytes(), size->bytes);
    EXPECT_EQ(shard->dit.part().head, share.pp_stage == share.pp_size - 1);
    EXPECT_EQ(shard->tp_blocks.has_value(), share.tp_size > 1);
  }
  // The sizes add up: pp stages split the blocks (embeddings on both),
  // tp ranks hold equal halves of the sliced weights.
  auto bytes = [&](const DiTShare& s) {
    auto size = DiTShareSize(c, s, at::kFloat);
    EXPECT_TRUE(size.ok()) << size.status();
    return size.ok() ? size->bytes : -1;
  };
  int64_t embeddings = 0, whole_params = 0;
  for (const auto& [key, shape] : DiTWeightShapes(c)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    whole_params += n;
    if (!absl::StartsWith(key, "blocks.") && !absl::StartsWith(key, "head.")) {
      embeddings += n * 4;
    }
  }
  EXPECT_EQ(bytes({0, 2, 0, 1}) + bytes({1, 2, 0, 1}), bytes({}) + embeddings);
  EXPECT_EQ(bytes({0, 1, 0, 2}), bytes({0, 1, 1, 2}));
  EXPECT_LT(bytes({0, 1, 0, 2}), bytes({}));
  EXPECT_EQ(DiTShareSize(c, {}, at::kFloat)->parameters, whole_params);
  EXPECT_EQ(DiTShareSize(c, {}, at::kBFloat16)->parameters, whole_params);
}

TEST(DiTShareTest, ComputeDtypeAppliesToLinearWeightsOnly) {
  const PipelineConfig config = SmallConfig();
  const WeightMap mapped = MappedBf16Weights(config, "share_bf16.safetensors");
  DiTNumerics bf16;
  bf16.compute_dtype = at::kBFloat16;
  auto kept = MaterialiseDiTShare(config.dit, mapped, bf16, {1, 2, 0, 1});
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->at("blocks.2.ffn.0.weight").scalar_type(), at::kBFloat16);
  EXPECT_EQ(kept->at("blocks.2.modulation").scalar_type(), at::kFloat);
  EXPECT_EQ(kept->at("head.head.bias").scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(kept->at("blocks.2.ffn.0.weight"),
                        mapped.at("blocks.2.ffn.0.weight")));
}

TEST(DiTShareTest, MissingOrMisShapedKeyIsNamed) {
  const PipelineConfig config = SmallConfig();
  WeightMap w = RandomWeights(config, 3);
  w.erase("blocks.2.ffn.2.weight");
  // Stage 0 does not need layer 2.
  EXPECT_TRUE(LoadDiTShard(config.dit, w, {}, {0, 2, 0, 2}).ok());
  auto missing = LoadDiTShard(config.dit, w, {}, {1, 2, 0, 2});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("missing key \"blocks.2.ffn.2.weight\""));
  w["blocks.2.ffn.2.weight"] = at::zeros({64, 95});
  auto shape = LoadDiTShard(config.dit, w, {}, {1, 2, 1, 2});
  ASSERT_FALSE(shape.ok());
  EXPECT_THAT(std::string(shape.status().message()),
              HasSubstr("\"blocks.2.ffn.2.weight\" has shape [64, 95]"));
}

TEST(DiTShareTest, KeyFilterReadsOnlyTheShare) {
  const PipelineConfig config = SmallConfig();
  const DiTShare share{0, 2, 1, 2};
  KeyFilter keep = DiTShareKeyFilter(config.dit, share);
  ASSERT_TRUE(keep != nullptr);
  EXPECT_TRUE(keep("blocks.1.ffn.0.weight"));
  EXPECT_TRUE(keep("text_embedding.0.weight"));
  EXPECT_FALSE(keep("blocks.2.ffn.0.weight"));
  EXPECT_FALSE(keep("head.head.weight"));
}

// A share-loaded pipeline refuses to step alone (it holds part of the DiT).
TEST(DiTShareTest, PartialPipelineNeedsAParallelDiT) {
  const PipelineConfig config = SmallConfig();
  PipelineOptions options;
  options.dit_share = {0, 2, 0, 1};
  auto p = Pipeline::Create(config, RandomWeights(config, 3), options);
  ASSERT_TRUE(p.ok()) << p.status();
  GenerationSpec spec;
  spec.width = config.default_width;
  spec.height = config.default_height;
  spec.num_steps = 2;
  spec.items = {{"a red circle", "", 1, 1.0f}};
  auto state = (*p)->Prepare(spec);
  ASSERT_TRUE(state.ok()) << state.status();
  absl::Status s = (*p)->Step(*state);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("pp stage 0 of 2"));
}

int64_t RssFileKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "RssFile:")) {
      return std::atoll(line.c_str() + 8);
    }
  }
  return -1;
}

// Reading mapped weights faults their pages into this process;
// ReleaseMappedPages takes them out again and the views still read the same.
TEST(ReleaseMappedPagesTest, TouchedPagesLeaveTheRss) {
  WeightMap big{{"a", at::arange(8 << 20, at::kFloat)}};  // 32 MiB
  const std::string path = TempPath("release.safetensors");
  ASSERT_TRUE(WriteSafetensors(big, path).ok());
  auto mapped = ReadSafetensors(path);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  const int64_t before = RssFileKb();
  ASSERT_GE(before, 0) << "no RssFile in /proc/self/status";
  const double sum = mapped->at("a").sum().item<double>();  // touch it all
  const int64_t touched = RssFileKb();
  EXPECT_GE(touched - before, 24 << 10);
  const uint64_t released = checkpoint::ReleaseMappedPages(mapped->at("a"));
  EXPECT_GE(released, uint64_t{32} << 20);
  EXPECT_LE(RssFileKb(), touched - (24 << 10));
  EXPECT_EQ(mapped->at("a").sum().item<double>(), sum);
  // Owned memory is never advised.
  EXPECT_EQ(checkpoint::ReleaseMappedPages(big.at("a")), 0u);
  EXPECT_EQ(big.at("a")[5].item<float>(), 5.0f);
}

}  // namespace
}  // namespace dserve::models
