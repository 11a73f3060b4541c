// The model-dependent mesh rules ParallelDiT::Create enforces. (Numerical
// equivalence of every layout is tested in real processes by
// //tests:parallel_equivalence_test.)

#include "worker/models/parallel_dit.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parallel/device_mesh.h"
#include "worker/models/model_config.h"
#include "worker/models/random_weights.h"

namespace dserve::models {
namespace {

using ::testing::HasSubstr;

parallel::DeviceMesh Mesh(const std::string& spec) {
  auto degrees = parallel::ParseMeshSpec(spec);
  EXPECT_TRUE(degrees.ok()) << degrees.status();
  auto mesh = parallel::DeviceMesh::OverRanks(*degrees);
  EXPECT_TRUE(mesh.ok()) << mesh.status();
  return *mesh;
}

TEST(ValidateMeshForModelTest, Table) {
  DiTConfig c = DefaultModelConfig().dit;
  c.num_heads = 4;
  c.num_layers = 4;
  c.ffn_dim = 96;
  struct Case {
    std::string mesh;
    std::string error;  // empty = accepted
  };
  const std::vector<Case> cases = {
      {"cfg=2,ulysses=2", ""},
      {"ulysses=4", ""},
      {"ring=8", ""},  // ring has no head constraint
      {"ulysses=8", "num_heads 4 is not divisible by ulysses*tp"},
      {"pp=4", ""},
      {"pp=5", "num_layers 4 is fewer than pp = 5"},
      {"tp=2", ""},
      {"tp=4", ""},
      {"pp=2,tp=2", ""},
  };
  for (const Case& k : cases) {
    absl::Status s = ValidateMeshForModel(Mesh(k.mesh), c);
    if (k.error.empty()) {
      EXPECT_TRUE(s.ok()) << k.mesh << ": " << s;
    } else {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k.mesh;
      EXPECT_THAT(std::string(s.message()), HasSubstr(k.error)) << k.mesh;
    }
  }
  c.num_heads = 6;
  c.dim = 132;
  c.ffn_dim = 90;  // 6 heads allow tp=3 but ffn_dim 90 does not allow tp=6
  EXPECT_TRUE(ValidateMeshForModel(Mesh("tp=3"), c).ok());
  c.ffn_dim = 100;
  absl::Status ffn = ValidateMeshForModel(Mesh("tp=3"), c);
  EXPECT_THAT(std::string(ffn.message()),
              HasSubstr("mesh tp = 3 does not divide the model's ffn_dim = 100"));
}

TEST(ParallelDiTTest, CreateRejectsMissingCommunicators) {
  PipelineConfig pc = DefaultModelConfig();
  WeightMap w = RandomWeights(pc, 1);
  auto dit = DiT::Create(pc.dit, w);
  ASSERT_TRUE(dit.ok()) << dit.status();
  auto p = ParallelDiT::Create(*dit, w, pc.coordinate_planes,
                               ParallelContext{Mesh("cfg=2"), nullptr});
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("comms is null"));
}

}  // namespace
}  // namespace dserve::models
