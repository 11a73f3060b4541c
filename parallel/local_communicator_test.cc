#include "parallel/local_communicator.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <ATen/ATen.h>

namespace dserve::parallel {
namespace {

using ::testing::HasSubstr;

TEST(LocalCommunicatorTest, CollectivesOfOneRankAreCopies) {
  LocalCommunicator comm;
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);

  at::Tensor t = at::arange(4, at::kFloat);
  ASSERT_TRUE(comm.Broadcast(t, 0).ok());
  ASSERT_TRUE(comm.AllReduceSum(t).ok());
  EXPECT_TRUE(t.equal(at::arange(4, at::kFloat)));

  at::Tensor gathered = at::zeros({4}, at::kFloat);
  ASSERT_TRUE(comm.AllGather(t, gathered).ok());
  EXPECT_TRUE(gathered.equal(t));
  at::Tensor exchanged = at::zeros({4}, at::kFloat);
  ASSERT_TRUE(comm.AllToAll(t, exchanged).ok());
  EXPECT_TRUE(exchanged.equal(t));
  ASSERT_TRUE(comm.Barrier().ok());

  // (size - 1) factors make every byte count zero; calls are still counted.
  EXPECT_EQ(comm.stats().total_bytes(), 0);
  EXPECT_EQ(comm.stats().calls, 5);
}

TEST(LocalCommunicatorTest, RejectsWhatNoGroupOfOneCanDo) {
  LocalCommunicator comm;
  at::Tensor t = at::zeros({2});
  EXPECT_THAT(std::string(comm.Send(t, 0).message()),
              HasSubstr("Send: peer 0 is invalid for rank 0"));
  EXPECT_EQ(comm.Recv(t, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(comm.Broadcast(t, 1).message()),
              HasSubstr("root 1 is out of range; allowed range is [0, 1)"));
  at::Tensor wrong = at::zeros({3});
  EXPECT_THAT(std::string(comm.AllGather(t, wrong).message()),
              HasSubstr("must be input shape"));
  EXPECT_EQ(comm.stats().calls, 0);
}

}  // namespace
}  // namespace dserve::parallel
