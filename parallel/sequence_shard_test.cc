#include "parallel/sequence_shard.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parallel/communicator.h"
#include "parallel/testing/fake_communicator.h"
#include <ATen/ATen.h>

namespace dserve::parallel {
namespace {

using ::testing::HasSubstr;

TEST(SequenceShardTest, PaddedLength) {
  EXPECT_EQ(PaddedLength(10, 4), 12);
  EXPECT_EQ(PaddedLength(12, 4), 12);
  EXPECT_EQ(PaddedLength(1, 3), 3);
  EXPECT_EQ(PaddedLength(7, 1), 7);
}

TEST(SequenceShardTest, ShardsPadWithZerosAndGatherTrims) {
  // (B, S, C) = (2, 10, 3): 10 rows over 4 ranks -> 3 rows each, the last
  // shard holding 1 real row and 2 zero rows.
  const at::Tensor x = at::arange(1, 61, at::kFloat).reshape({2, 10, 3});
  testing::RunFakeRanks(4, [&](int rank, Communicator& comm) {
    auto shard = ShardSequence(x, /*dim=*/1, rank, 4);
    ASSERT_TRUE(shard.ok()) << shard.status();
    ASSERT_EQ(shard->sizes(), (std::vector<int64_t>{2, 3, 3}));
    if (rank < 3) {
      EXPECT_TRUE(shard->equal(x.narrow(1, rank * 3, 3)));
    } else {
      EXPECT_TRUE(shard->narrow(1, 0, 1).equal(x.narrow(1, 9, 1)));
      EXPECT_TRUE(shard->narrow(1, 1, 2).eq(0).all().item<bool>());
    }
    auto whole = GatherSequence(comm, *shard, /*dim=*/1, /*length=*/10);
    ASSERT_TRUE(whole.ok()) << whole.status();
    EXPECT_TRUE(whole->equal(x));
  });
}

TEST(SequenceShardTest, PaddingMaskMarksPaddedKeys) {
  at::Tensor mask = SequencePaddingMask(/*batch=*/2, /*length=*/10, /*parts=*/4);
  ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{2, 12}));
  EXPECT_EQ(mask.scalar_type(), at::kBool);
  EXPECT_EQ(mask.sum().item<int64_t>(), 4);  // 2 padded keys per batch row
  EXPECT_TRUE(mask[1][10].item<bool>());
  EXPECT_FALSE(mask[1][9].item<bool>());
}

TEST(SequenceShardTest, RejectsBadArguments) {
  const at::Tensor x = at::zeros({2, 5});
  EXPECT_THAT(std::string(ShardSequence(x, 1, 4, 4).status().message()),
              HasSubstr("index 4 of parts 4 is invalid"));
  EXPECT_THAT(std::string(ShardSequence(x, 2, 0, 2).status().message()),
              HasSubstr("dim 2 is out of range"));
  testing::RunFakeRanks(2, [](int rank, Communicator& comm) {
    auto too_long = GatherSequence(comm, at::zeros({3}), 0, 7);
    EXPECT_THAT(std::string(too_long.status().message()),
                HasSubstr("length 7 is out of range; allowed range is [0, 6]"));
  });
}

}  // namespace
}  // namespace dserve::parallel
