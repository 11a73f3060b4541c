#include "parallel/ulysses_comm.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parallel/communicator.h"
#include "parallel/local_communicator.h"
#include "parallel/testing/fake_communicator.h"
#include <ATen/ATen.h>

namespace dserve::parallel {
namespace {

using ::testing::HasSubstr;

// (B, S, H, D) = (2, 12, 4 or 8, 3); every element distinct, so any
// misplaced row or head shows.
at::Tensor Full(int64_t heads) {
  return at::arange(2 * 12 * heads * 3, at::kFloat).reshape({2, 12, heads, 3});
}

class UlyssesCommTest : public ::testing::TestWithParam<int> {};

TEST_P(UlyssesCommTest, ScatterGivesFullSequenceOfOwnHeadsAndGatherInverts) {
  const int u = GetParam();
  const at::Tensor full = Full(/*heads=*/8);
  testing::RunFakeRanks(u, [&](int rank, Communicator& comm) {
    const int64_t s_local = 12 / u, h_local = 8 / u;
    at::Tensor shard = full.narrow(1, rank * s_local, s_local).contiguous();

    absl::StatusOr<at::Tensor> heads = UlyssesScatterHeads(comm, shard);
    ASSERT_TRUE(heads.ok()) << heads.status();
    EXPECT_TRUE(heads->equal(full.narrow(2, rank * h_local, h_local)));
    EXPECT_EQ(comm.stats().all_to_all_bytes,
              (u - 1) * static_cast<int64_t>(shard.nbytes()) / u);

    absl::StatusOr<at::Tensor> back = UlyssesGatherHeads(comm, *heads);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(back->equal(shard));
  });
}

// Through the default AllToAllAsync (a blocking exchange per tensor): the
// overlapped scatter returns what one UlyssesScatterHeads per tensor does.
TEST_P(UlyssesCommTest, AsyncScatterMatchesOneScatterPerTensor) {
  const int u = GetParam();
  const at::Tensor q = Full(/*heads=*/8), k = Full(8) * 2, v = Full(4) + 1;
  testing::RunFakeRanks(u, [&](int rank, Communicator& comm) {
    const int64_t s_local = 12 / u;
    std::vector<at::Tensor> shards;
    for (const at::Tensor& t : {q, k, v}) {
      shards.push_back(t.narrow(1, rank * s_local, s_local).contiguous());
    }
    auto async = UlyssesScatterHeadsAsync(comm, shards);
    ASSERT_TRUE(async.ok()) << async.status();
    ASSERT_EQ(async->size(), 3u);
    int64_t shard_bytes = 0;
    for (int i = 0; i < 3; ++i) {
      auto sync = UlyssesScatterHeads(comm, shards[i]);
      ASSERT_TRUE(sync.ok()) << sync.status();
      EXPECT_TRUE((*async)[i].equal(*sync)) << "tensor " << i;
      shard_bytes += static_cast<int64_t>(shards[i].nbytes());
    }
    // Both passes together: twice the bytes of one.
    EXPECT_EQ(comm.stats().all_to_all_bytes, 2 * (u - 1) * shard_bytes / u);
  });
}

INSTANTIATE_TEST_SUITE_P(Degrees, UlyssesCommTest, ::testing::Values(2, 4));

TEST(UlyssesCommTest, OneRankIsIdentity) {
  LocalCommunicator comm;
  const at::Tensor full = Full(4);
  auto heads = UlyssesScatterHeads(comm, full);
  ASSERT_TRUE(heads.ok());
  EXPECT_TRUE(heads->equal(full));
  auto back = UlyssesGatherHeads(comm, *heads);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->equal(full));
}

TEST(UlyssesCommTest, RejectsShapesTheDegreeDoesNotDivide) {
  testing::RunFakeRanks(4, [](int rank, Communicator& comm) {
    auto bad_heads = UlyssesScatterHeads(comm, at::zeros({1, 3, 6, 2}));
    EXPECT_THAT(std::string(bad_heads.status().message()),
                HasSubstr("H divisible by the ulysses degree 4"));
    auto bad_async = UlyssesScatterHeadsAsync(
        comm, {at::zeros({1, 3, 8, 2}), at::zeros({1, 3, 6, 2})});
    EXPECT_THAT(std::string(bad_async.status().message()),
                HasSubstr("H divisible by the ulysses degree 4"));
    auto bad_seq = UlyssesGatherHeads(comm, at::zeros({1, 6, 2, 2}));
    EXPECT_THAT(std::string(bad_seq.status().message()),
                HasSubstr("S divisible by the ulysses degree 4"));
  });
}

}  // namespace
}  // namespace dserve::parallel
