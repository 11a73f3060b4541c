#include "parallel/mesh_communicators.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parallel/communicator.h"
#include "parallel/device_mesh.h"
#include "parallel/testing/fake_communicator.h"
#include "parallel/testing/multiprocess.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::parallel {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

DeviceMesh Mesh(const std::string& spec) {
  auto degrees = ParseMeshSpec(spec);
  EXPECT_TRUE(degrees.ok()) << degrees.status();
  auto mesh = DeviceMesh::OverRanks(*degrees);
  EXPECT_TRUE(mesh.ok()) << mesh.status();
  return *mesh;
}

CommunicatorFactory FakeFactory(testing::FakeGroupRegistry& registry) {
  return [&registry](const c10::intrusive_ptr<c10d::Store>&,
                     const std::string& name, int rank, int size) {
    return registry.Connect(name, rank, size);
  };
}

// Each rank all-gathers its own replica rank over every dim; the result must
// be exactly the group's member list, which checks membership and order
// through the communicators themselves.
void ExpectGroupsCarryTheirMembers(const MeshCommunicators& comms) {
  for (MeshDim dim : {MeshDim::kDp, MeshDim::kCfg, MeshDim::kRing,
                      MeshDim::kUlysses, MeshDim::kSp, MeshDim::kPp,
                      MeshDim::kTp}) {
    Communicator& g = comms.group(dim);
    const std::vector<int>& members = comms.group_ranks(dim);
    ASSERT_EQ(g.size(), static_cast<int>(members.size()));
    EXPECT_EQ(members[g.rank()], comms.rank());
    at::Tensor mine = at::full({1}, static_cast<int64_t>(comms.rank()), at::kLong);
    at::Tensor all = at::empty({g.size()}, at::kLong);
    ASSERT_TRUE(g.AllGather(mine, all).ok());
    std::vector<int> got;
    for (int i = 0; i < g.size(); ++i) got.push_back(all[i].item<int64_t>());
    EXPECT_EQ(got, members) << "dim " << MeshDimName(dim);
  }
  at::Tensor one = at::ones({1}, at::kLong);
  ASSERT_TRUE(comms.world().AllReduceSum(one).ok());
  EXPECT_EQ(one.item<int64_t>(), comms.world().size());
}

void RunMeshOnThreads(const DeviceMesh& mesh,
                      testing::FakeGroupRegistry& registry) {
  std::vector<std::thread> threads;
  for (int r = 0; r < mesh.replica_size(); ++r) {
    threads.emplace_back([&, r] {
      auto comms = MeshCommunicators::Create(mesh, r, {}, FakeFactory(registry));
      ASSERT_TRUE(comms.ok()) << comms.status();
      ExpectGroupsCarryTheirMembers(*comms);
    });
  }
  for (auto& t : threads) t.join();
}

TEST(MeshCommunicatorsTest, CfgTimesUlyssesOnFakes) {
  // rank = cfg*2 + ulysses.
  DeviceMesh mesh = Mesh("cfg=2,ulysses=2");
  testing::FakeGroupRegistry registry;
  RunMeshOnThreads(mesh, registry);
  // Only groups of size > 1 are created; sp shares ulysses' group.
  EXPECT_THAT(registry.GroupNames(),
              ElementsAre("mesh/cfg:0,2", "mesh/cfg:1,3", "mesh/ulysses:0,1",
                          "mesh/ulysses:2,3", "mesh/world"));
}

TEST(MeshCommunicatorsTest, UspWithPipelineOnFakes) {
  // ring=2, ulysses=2, pp=2: rank = ring*4 + ulysses*2 + pp.
  DeviceMesh mesh = Mesh("ring=2,ulysses=2,pp=2");
  testing::FakeGroupRegistry registry;
  RunMeshOnThreads(mesh, registry);
  auto names = registry.GroupNames();
  EXPECT_THAT(names, ::testing::Contains("mesh/sp:0,2,4,6"));
  EXPECT_THAT(names, ::testing::Contains("mesh/ring:1,5"));
  EXPECT_THAT(names, ::testing::Contains("mesh/pp:6,7"));
}

TEST(MeshCommunicatorsTest, DataParallelMeshIsReplicaLocal) {
  // dp=2 x tp=2: each replica has 2 ranks; rank 1 is replica-local.
  DeviceMesh mesh = Mesh("dp=2,tp=2");
  testing::FakeGroupRegistry registry;
  RunMeshOnThreads(mesh, registry);
  EXPECT_THAT(registry.GroupNames(), ElementsAre("mesh/tp:0,1", "mesh/world"));
  auto bad = MeshCommunicators::Create(mesh, 2, {}, FakeFactory(registry));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("rank 2 is out of range; allowed range is [0, 2)"));
}

TEST(MeshCommunicatorsTest, OneRankNeedsNoFactoryCalls) {
  DeviceMesh mesh = Mesh("");
  int calls = 0;
  CommunicatorFactory counting = [&calls](const auto&, const std::string&, int,
                                          int) {
    ++calls;
    return absl::StatusOr<std::unique_ptr<Communicator>>(
        absl::InternalError("unexpected factory call"));
  };
  auto comms = MeshCommunicators::Create(mesh, 0, {}, counting);
  ASSERT_TRUE(comms.ok()) << comms.status();
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(comms->world().size(), 1);
  ExpectGroupsCarryTheirMembers(*comms);
}

TEST(MeshCommunicatorsTest, FactoryErrorsNameTheGroup) {
  DeviceMesh mesh = Mesh("cfg=2");
  CommunicatorFactory failing = [](const auto&, const std::string&, int, int) {
    return absl::StatusOr<std::unique_ptr<Communicator>>(
        absl::UnavailableError("peer gone"));
  };
  auto comms = MeshCommunicators::Create(mesh, 0, {}, failing);
  EXPECT_EQ(comms.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(comms.status().message()),
              HasSubstr("creating group mesh/world: peer gone"));
}

TEST(MeshCommunicatorsTest, StatsSumOverGroups) {
  DeviceMesh mesh = Mesh("cfg=2,ulysses=2");
  testing::FakeGroupRegistry registry;
  std::vector<std::thread> threads;
  for (int r = 0; r < 4; ++r) {
    threads.emplace_back([&, r] {
      auto comms = MeshCommunicators::Create(mesh, r, {}, FakeFactory(registry));
      ASSERT_TRUE(comms.ok());
      at::Tensor t = at::ones({4}, at::kFloat);  // 16 bytes
      ASSERT_TRUE(comms->group(MeshDim::kCfg).AllReduceSum(t).ok());
      ASSERT_TRUE(comms->group(MeshDim::kSp).AllReduceSum(t).ok());
      // 2*(2-1)/2*16 per all-reduce; sp is the ulysses group, counted once.
      EXPECT_EQ(comms->TotalStats().all_reduce_bytes, 32);
      EXPECT_EQ(comms->group(MeshDim::kUlysses).stats().calls, 1);
      comms->ResetStats();
      EXPECT_EQ(comms->TotalStats().calls, 0);
    });
  }
  for (auto& t : threads) t.join();
}

// The real thing: 4 processes, Gloo groups over one TCPStore.
TEST(MeshCommunicatorsTest, CfgTimesUlyssesOverGloo) {
  absl::Status run = testing::RunRanks(4, [](int rank, int world, auto store) {
    at::set_num_threads(1);
    DeviceMesh mesh = Mesh("cfg=2,ulysses=2");
    auto comms = MeshCommunicators::Create(
        mesh, rank, store, GlooCommunicatorFactory(std::chrono::seconds(20)));
    ASSERT_TRUE(comms.ok()) << comms.status();
    EXPECT_EQ(comms->world().backend_name(), "gloo");
    ExpectGroupsCarryTheirMembers(*comms);
  });
  EXPECT_TRUE(run.ok()) << run;
}

}  // namespace
}  // namespace dserve::parallel
