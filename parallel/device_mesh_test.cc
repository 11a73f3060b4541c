#include "parallel/device_mesh.h"

#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::parallel {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Debian's abseil has its own string_view, which gmock cannot match on.
std::string Msg(const absl::Status& s) { return std::string(s.message()); }

std::vector<int> Iota(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

MeshDegrees Degrees(int dp, int cfg, int ring, int ulysses, int pp, int tp) {
  MeshDegrees d;
  d.dp = dp;
  d.cfg = cfg;
  d.ring = ring;
  d.ulysses = ulysses;
  d.pp = pp;
  d.tp = tp;
  return d;
}

DeviceMesh MakeMesh(const MeshDegrees& d) {
  auto mesh = DeviceMesh::Create(d, Iota(static_cast<int>(WorldSize(d))));
  EXPECT_TRUE(mesh.ok()) << mesh.status();
  return *mesh;
}

// ---------------------------------------------------------------- parsing

TEST(ParseMeshSpecTest, ParsesKeysInAnyOrderAndDefaultsToOne) {
  auto d = ParseMeshSpec("ulysses=2, dp=2,cfg=2");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, Degrees(2, 2, 1, 2, 1, 1));

  auto all = ParseMeshSpec("tp=2,pp=3,ulysses=1,ring=4,cfg=1,dp=5");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, Degrees(5, 1, 4, 1, 3, 2));
}

TEST(ParseMeshSpecTest, EmptySpecIsOneProcess) {
  auto d = ParseMeshSpec("");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, MeshDegrees());
  EXPECT_EQ(WorldSize(*d), 1);
}

TEST(ParseMeshSpecTest, RejectsUnknownKey) {
  auto d = ParseMeshSpec("dp=2,sp=2");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(d.status()), HasSubstr("key \"sp\" is unknown"));
  EXPECT_THAT(Msg(d.status()),
              HasSubstr("allowed keys are dp, cfg, ring, ulysses, pp, tp"));
}

TEST(ParseMeshSpecTest, RejectsDuplicateKey) {
  auto d = ParseMeshSpec("cfg=2,cfg=2");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(d.status()),
              HasSubstr("key \"cfg\" is given more than once"));
}

TEST(ParseMeshSpecTest, RejectsNonPositiveValues) {
  for (const char* spec : {"ulysses=0", "ulysses=-2"}) {
    auto d = ParseMeshSpec(spec);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << spec;
    EXPECT_THAT(Msg(d.status()), HasSubstr("is out of range"));
    EXPECT_THAT(Msg(d.status()), HasSubstr("allowed range is [1, 1024]"));
  }
  EXPECT_THAT(Msg(ParseMeshSpec("ulysses=0").status()),
              HasSubstr("ulysses=0"));
  EXPECT_THAT(Msg(ParseMeshSpec("pp=2000").status()),
              HasSubstr("pp=2000 is out of range"));
}

TEST(ParseMeshSpecTest, RejectsNonIntegerValues) {
  for (const char* spec : {"dp=two", "dp=1.5", "dp=", "dp=2x"}) {
    auto d = ParseMeshSpec(spec);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << spec;
    EXPECT_THAT(Msg(d.status()), HasSubstr("for key dp is not an integer"))
        << spec;
  }
}

TEST(ParseMeshSpecTest, RejectsMalformedEntries) {
  EXPECT_THAT(Msg(ParseMeshSpec("dp").status()),
              HasSubstr("entry \"dp\" is not key=value"));
  EXPECT_THAT(Msg(ParseMeshSpec("dp=2,,cfg=2").status()),
              HasSubstr("has an empty entry"));
  EXPECT_THAT(Msg(ParseMeshSpec("dp=2,").status()),
              HasSubstr("has an empty entry"));
}

TEST(FormatMeshSpecTest, CanonicalFormRoundTrips) {
  MeshDegrees d = Degrees(1, 2, 1, 2, 1, 1);
  EXPECT_EQ(FormatMeshSpec(d), "dp=1,cfg=2,ring=1,ulysses=2,pp=1,tp=1");
  auto parsed = ParseMeshSpec(FormatMeshSpec(Degrees(3, 1, 2, 4, 5, 1)));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, Degrees(3, 1, 2, 4, 5, 1));
}

TEST(DeviceMeshTest, OverRanksPutsRankROnDeviceR) {
  auto mesh = DeviceMesh::OverRanks(Degrees(2, 2, 1, 2, 1, 1));
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  EXPECT_THAT(mesh->device_ids(), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  EXPECT_EQ(mesh->degrees(), Degrees(2, 2, 1, 2, 1, 1));
  // Degrees are validated before any device list is made.
  auto bad = DeviceMesh::OverRanks(Degrees(1, 3, 1, 1, 1, 1));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Msg(bad.status()), HasSubstr("cfg degree 3"));
}

TEST(ReplicaDegreesTest, DropsOnlyDp) {
  const MeshDegrees replica = ReplicaDegrees(Degrees(4, 2, 1, 2, 3, 1));
  EXPECT_EQ(replica, Degrees(1, 2, 1, 2, 3, 1));
  EXPECT_EQ(WorldSize(replica), 12);
  EXPECT_EQ(FormatMeshSpec(replica), "dp=1,cfg=2,ring=1,ulysses=2,pp=3,tp=1");
}

// ------------------------------------------------------------- validation

TEST(DeviceMeshTest, DeviceCountMustMatchWorldSize) {
  // TeleFuser's message comes first so users who know it find it.
  auto mesh = DeviceMesh::Create(Degrees(1, 2, 1, 1, 1, 1), {0, 1, 2, 3});
  EXPECT_EQ(mesh.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(mesh.status()),
              ::testing::StartsWith("device num 4 and world size 2 not match"));
  EXPECT_THAT(Msg(mesh.status()), HasSubstr("pass exactly 2 devices"));

  auto empty = DeviceMesh::Create(MeshDegrees(), {});
  EXPECT_THAT(Msg(empty.status()),
              ::testing::StartsWith("device num 0 and world size 1 not match"));
}

TEST(DeviceMeshTest, SequenceParallelAndTensorParallelAreExclusive) {
  for (MeshDegrees d : {Degrees(1, 1, 1, 2, 1, 2), Degrees(1, 1, 2, 1, 1, 2)}) {
    auto mesh = DeviceMesh::Create(d, Iota(4));
    EXPECT_EQ(mesh.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(mesh.status()),
                ::testing::StartsWith("Not allowed to enable sequence parallel "
                                      "and tensor parallel together"));
    EXPECT_THAT(Msg(mesh.status()), HasSubstr("set tp=1"));
  }
}

TEST(DeviceMeshTest, CfgDegreeMustBeOneOrTwo) {
  auto mesh = DeviceMesh::Create(Degrees(1, 4, 1, 1, 1, 1), Iota(4));
  EXPECT_EQ(mesh.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(mesh.status()), HasSubstr("cfg degree 4 is not allowed"));
  EXPECT_THAT(Msg(mesh.status()), HasSubstr("cfg must be 1 or 2"));
}

TEST(DeviceMeshTest, DegreesMustBePositive) {
  auto mesh = DeviceMesh::Create(Degrees(1, 1, 0, 1, 1, 1), {});
  EXPECT_THAT(Msg(mesh.status()),
              HasSubstr("mesh degree ring=0 is out of range"));
}

TEST(DeviceMeshTest, DeviceIdsMustBeDistinctAndNonNegative) {
  auto dup = DeviceMesh::Create(Degrees(1, 2, 1, 1, 1, 1), {3, 3});
  EXPECT_THAT(Msg(dup.status()),
              HasSubstr("device id 3 appears more than once"));
  auto neg = DeviceMesh::Create(Degrees(1, 2, 1, 1, 1, 1), {0, -1});
  EXPECT_THAT(Msg(neg.status()), HasSubstr("device_ids[1] = -1"));
}

TEST(DeviceMeshTest, HeadsMustDivideByUlyssesTimesTp) {
  DeviceMesh u4 = MakeMesh(Degrees(1, 1, 1, 4, 1, 1));
  absl::Status s = u4.ValidateForModel(/*num_heads=*/6, /*num_layers=*/4);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), HasSubstr("num_heads 6 is not divisible by "
                                     "ulysses*tp = 4*1 = 4"));
  EXPECT_THAT(Msg(s), HasSubstr("divisors of 6 (1, 2, 3, 6)"));
  EXPECT_TRUE(u4.ValidateForModel(8, 4).ok());

  DeviceMesh tp4 = MakeMesh(Degrees(1, 1, 1, 1, 1, 4));
  EXPECT_THAT(Msg(tp4.ValidateForModel(2, 4)),
              HasSubstr("ulysses*tp = 1*4 = 4"));
  // Ring splits the sequence, not the heads.
  DeviceMesh r4 = MakeMesh(Degrees(1, 1, 4, 1, 1, 1));
  EXPECT_TRUE(r4.ValidateForModel(3, 4).ok());
}

TEST(DeviceMeshTest, LayersMustNotBeFewerThanPp) {
  DeviceMesh pp3 = MakeMesh(Degrees(1, 1, 1, 1, 3, 1));
  absl::Status s = pp3.ValidateForModel(/*num_heads=*/4, /*num_layers=*/2);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), HasSubstr("num_layers 2 is fewer than pp = 3"));
  EXPECT_THAT(Msg(s), HasSubstr("set pp <= 2"));
  EXPECT_TRUE(pp3.ValidateForModel(4, 3).ok());
  EXPECT_THAT(Msg(pp3.ValidateForModel(0, 3)), HasSubstr("num_heads 0"));
}

TEST(DeviceMeshTest, AttentionStrategy) {
  EXPECT_EQ(MakeMesh(Degrees(2, 2, 1, 1, 2, 2)).attention_strategy(), "local");
  EXPECT_EQ(MakeMesh(Degrees(1, 1, 1, 2, 1, 1)).attention_strategy(), "ulysses");
  EXPECT_EQ(MakeMesh(Degrees(1, 1, 2, 1, 1, 1)).attention_strategy(), "ring");
  EXPECT_EQ(MakeMesh(Degrees(1, 1, 2, 2, 1, 1)).attention_strategy(), "usp");
}

// ------------------------------------------------------- rank arithmetic

// dp=2, cfg=2, ulysses=2, pp=2: rank = dp*8 + cfg*4 + ulysses*2 + pp.
class SixteenRankMeshTest : public ::testing::Test {
 protected:
  DeviceMesh mesh_ = MakeMesh(Degrees(2, 2, 1, 2, 2, 1));
};

TEST_F(SixteenRankMeshTest, Sizes) {
  EXPECT_EQ(mesh_.world_size(), 16);
  EXPECT_EQ(mesh_.replica_size(), 8);
  EXPECT_EQ(mesh_.degree(MeshDim::kSp), 2);
  EXPECT_EQ(mesh_.DebugString(),
            "dp=2,cfg=2,ring=1,ulysses=2,pp=2,tp=1 "
            "devices=[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]");
}

TEST_F(SixteenRankMeshTest, CoordinatesOfHandPickedRanks) {
  auto c5 = mesh_.Coords(5);  // 0*8 + 1*4 + 0*2 + 1
  ASSERT_TRUE(c5.ok());
  EXPECT_EQ(c5->dp, 0);
  EXPECT_EQ(c5->cfg, 1);
  EXPECT_EQ(c5->ring, 0);
  EXPECT_EQ(c5->ulysses, 0);
  EXPECT_EQ(c5->pp, 1);
  EXPECT_EQ(c5->tp, 0);
  auto c14 = mesh_.Coords(14);  // 1*8 + 1*4 + 1*2 + 0
  ASSERT_TRUE(c14.ok());
  EXPECT_EQ(c14->dp, 1);
  EXPECT_EQ(c14->cfg, 1);
  EXPECT_EQ(c14->ulysses, 1);
  EXPECT_EQ(c14->pp, 0);
}

TEST_F(SixteenRankMeshTest, CoordinatesRoundTrip) {
  for (int r = 0; r < 16; ++r) {
    auto c = mesh_.Coords(r);
    ASSERT_TRUE(c.ok());
    auto back = mesh_.RankOf(*c);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, r);
  }
  EXPECT_THAT(Msg(mesh_.Coords(16).status()),
              HasSubstr("rank 16 is out of range; allowed range is [0, 16)"));
  MeshCoords bad;
  bad.pp = 2;
  EXPECT_THAT(Msg(mesh_.RankOf(bad).status()),
              HasSubstr("coordinate pp=2 is out of range"));
}

TEST_F(SixteenRankMeshTest, GroupsOfHandPickedRanks) {
  // Hand-computed from rank = dp*8 + cfg*4 + ulysses*2 + pp.
  struct Row {
    int rank;
    MeshDim dim;
    std::vector<int> group;
  };
  const std::vector<Row> table = {
      {5, MeshDim::kDp, {5, 13}},      {5, MeshDim::kCfg, {1, 5}},
      {5, MeshDim::kRing, {5}},        {5, MeshDim::kUlysses, {5, 7}},
      {5, MeshDim::kPp, {4, 5}},       {5, MeshDim::kTp, {5}},
      {5, MeshDim::kSp, {5, 7}},       {10, MeshDim::kDp, {2, 10}},
      {10, MeshDim::kCfg, {10, 14}},   {10, MeshDim::kUlysses, {8, 10}},
      {10, MeshDim::kPp, {10, 11}},    {0, MeshDim::kCfg, {0, 4}},
      {15, MeshDim::kUlysses, {13, 15}}, {15, MeshDim::kPp, {14, 15}},
  };
  for (const Row& row : table) {
    auto group = mesh_.GroupRanks(row.dim, row.rank);
    ASSERT_TRUE(group.ok());
    EXPECT_EQ(*group, row.group)
        << "rank " << row.rank << " dim " << MeshDimName(row.dim);
  }
}

TEST_F(SixteenRankMeshTest, GroupsPartitionTheWorld) {
  for (MeshDim dim : kMeshAxes) {
    std::set<std::vector<int>> groups;
    for (int r = 0; r < 16; ++r) {
      auto g = mesh_.GroupRanks(dim, r);
      ASSERT_TRUE(g.ok());
      EXPECT_EQ(static_cast<int>(g->size()), mesh_.degree(dim));
      // A rank's index in its group is its coordinate along the dim.
      auto coord = mesh_.Coord(dim, r);
      ASSERT_TRUE(coord.ok());
      EXPECT_EQ((*g)[*coord], r);
      groups.insert(*g);
    }
    EXPECT_EQ(static_cast<int>(groups.size()), 16 / mesh_.degree(dim))
        << MeshDimName(dim);
  }
}

TEST(DeviceMeshTest, SequenceParallelGroupOfUsp) {
  // cfg=2, ring=2, ulysses=2: rank = cfg*4 + ring*2 + ulysses.
  DeviceMesh mesh = MakeMesh(Degrees(1, 2, 2, 2, 1, 1));
  EXPECT_THAT(*mesh.GroupRanks(MeshDim::kSp, 5), ElementsAre(4, 5, 6, 7));
  EXPECT_THAT(*mesh.GroupRanks(MeshDim::kRing, 5), ElementsAre(5, 7));
  EXPECT_THAT(*mesh.GroupRanks(MeshDim::kUlysses, 5), ElementsAre(4, 5));
  EXPECT_EQ(*mesh.Coord(MeshDim::kSp, 7), 3);
  EXPECT_EQ(*mesh.Coord(MeshDim::kSp, 6), 2);
}

TEST(DeviceMeshTest, ReplicaMeshesAreContiguousBlocks) {
  auto mesh = DeviceMesh::Create(Degrees(2, 2, 1, 1, 1, 1), {7, 6, 5, 4});
  ASSERT_TRUE(mesh.ok());
  auto r1 = mesh->Replica(1);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->degrees(), Degrees(1, 2, 1, 1, 1, 1));
  EXPECT_THAT(r1->device_ids(), ElementsAre(5, 4));
  EXPECT_THAT(Msg(mesh->Replica(2).status()),
              HasSubstr("replica index 2 is out of range"));
}

}  // namespace
}  // namespace dserve::parallel
