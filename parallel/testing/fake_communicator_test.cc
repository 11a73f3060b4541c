#include "parallel/testing/fake_communicator.h"

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parallel/communicator.h"
#include <ATen/ATen.h>

namespace dserve::parallel::testing {
namespace {

using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

#define ASSERT_OK(expr)                   \
  do {                                    \
    const absl::Status status_ = (expr);  \
    ASSERT_TRUE(status_.ok()) << status_; \
  } while (0)

class FakeCommunicatorTest : public ::testing::TestWithParam<int> {};

TEST_P(FakeCommunicatorTest, EveryOpMovesTheRightDataAndCountsBytes) {
  RunFakeRanks(GetParam(), [](int rank, Communicator& comm) {
    const int world = comm.size();
    const int64_t w = world;
    EXPECT_EQ(comm.rank(), rank);
    EXPECT_EQ(comm.backend_name(), "fake");

    const int root = world - 1;
    at::Tensor b = rank == root ? at::arange(6, at::kFloat).mul(1.5)
                                : at::zeros({6}, at::kFloat);
    ASSERT_OK(comm.Broadcast(b, root));
    EXPECT_TRUE(b.equal(at::arange(6, at::kFloat).mul(1.5)));
    EXPECT_EQ(comm.stats().broadcast_bytes, rank == root ? (w - 1) * 24 : 0);

    at::Tensor r = at::full({3, 2}, rank + 1.0, at::kFloat);
    ASSERT_OK(comm.AllReduceSum(r));
    EXPECT_TRUE(r.equal(at::full({3, 2}, w * (w + 1) / 2.0, at::kFloat)));
    EXPECT_EQ(comm.stats().all_reduce_bytes, 2 * (w - 1) * 24 / w);

    at::Tensor in = at::full({2, 3}, static_cast<int64_t>(rank * 10), at::kLong);
    at::Tensor gathered = at::empty({2 * w, 3}, at::kLong);
    ASSERT_OK(comm.AllGather(in, gathered));
    for (int k = 0; k < world; ++k) {
      EXPECT_TRUE(gathered.narrow(0, 2 * k, 2).eq(k * 10).all().item<bool>());
    }
    EXPECT_EQ(comm.stats().all_gather_bytes, (w - 1) * in.nbytes());

    at::Tensor a2a_in = at::empty({2 * w, 4}, at::kFloat);
    for (int j = 0; j < world; ++j) {
      a2a_in.narrow(0, 2 * j, 2).fill_(100 * rank + j);
    }
    at::Tensor a2a_out = at::empty_like(a2a_in);
    ASSERT_OK(comm.AllToAll(a2a_in, a2a_out));
    for (int j = 0; j < world; ++j) {
      EXPECT_TRUE(
          a2a_out.narrow(0, 2 * j, 2).eq(100 * j + rank).all().item<bool>());
    }
    EXPECT_EQ(comm.stats().all_to_all_bytes, (w - 1) * a2a_in.nbytes() / w);

    ASSERT_OK(comm.Barrier());
    if (world == 1) {
      EXPECT_EQ(comm.stats().calls, 5);
      return;  // a lone rank has no peer to send to
    }

    // Buffered sends: the whole ring sends before anyone receives.
    const int next = (rank + 1) % world;
    const int prev = (rank + world - 1) % world;
    for (int round = 0; round < 2; ++round) {
      at::Tensor msg = at::full({1000}, 1000.0 * round + rank, at::kFloat);
      ASSERT_OK(comm.Send(msg, next));
      msg.fill_(-1);  // the caller may reuse the buffer at once
      at::Tensor got = at::zeros({1000}, at::kFloat);
      ASSERT_OK(comm.Recv(got, prev));
      EXPECT_TRUE(got.eq(1000.0 * round + prev).all().item<bool>());
    }
    EXPECT_EQ(comm.stats().send_bytes, 2 * 4000);
    EXPECT_EQ(comm.stats().calls, 9);

    at::Tensor token = at::full({500}, static_cast<double>(rank), at::kDouble);
    for (int step = 1; step <= 2 * world; ++step) {
      at::Tensor incoming = at::empty_like(token);
      ASSERT_OK(comm.SendRecv(token, next, incoming, prev));
      token = incoming;
      EXPECT_EQ(token[0].item<double>(), (rank - step % world + world) % world);
    }
    EXPECT_EQ(comm.stats().send_bytes, 2 * 4000 + 2 * w * 4000);
    EXPECT_EQ(comm.stats().calls, 9 + 4 * w);
  });
}

TEST_P(FakeCommunicatorTest, Bfloat16AllReduceSumsInFloat) {
  RunFakeRanks(GetParam(), [](int rank, Communicator& comm) {
    const int64_t w = comm.size();
    auto bf16 = at::TensorOptions().dtype(at::kBFloat16);
    at::Tensor r = at::full({8}, 0.5 * (rank + 1), bf16);
    ASSERT_OK(comm.AllReduceSum(r));
    EXPECT_EQ(r.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(r.equal(at::full({8}, 0.5 * w * (w + 1) / 2, bf16)));
    EXPECT_EQ(comm.stats().all_reduce_bytes, 2 * (w - 1) * 16 / w);
  });
}

INSTANTIATE_TEST_SUITE_P(Worlds, FakeCommunicatorTest,
                         ::testing::Values(1, 2, 3, 4));

TEST(FakeCommunicatorHubTest, DifferentOpsInOneRoundFailOnEveryRank) {
  RunFakeRanks(2, [](int rank, Communicator& comm) {
    at::Tensor t = at::ones({2, 2});
    absl::Status s = rank == 0 ? comm.AllReduceSum(t) : comm.Barrier();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(Msg(s), HasSubstr("in the same round"));
  });
}

TEST(FakeCommunicatorHubTest, MismatchedShapesAreReported) {
  RunFakeRanks(2, [](int rank, Communicator& comm) {
    at::Tensor t = at::ones({rank + 1});
    absl::Status s = comm.AllReduceSum(t);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(s), HasSubstr("rank 1 passed [2] Float"));
  });
}

TEST(FakeCommunicatorHubTest, MissingRankTimesOut) {
  FakeCommunicatorHub hub(2, absl::Milliseconds(50));
  auto comm = hub.Connect(0);
  ASSERT_TRUE(comm.ok());
  absl::Status s = (*comm)->Barrier();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(Msg(s), HasSubstr("only 1 of 2 ranks joined"));
  at::Tensor t = at::zeros({1});
  EXPECT_EQ((*comm)->Recv(t, 1).code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(FakeCommunicatorHubTest, RecvChecksShapeAndConnectChecksRank) {
  FakeCommunicatorHub hub(2);
  auto a = hub.Connect(0);
  auto b = hub.Connect(1);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(hub.Connect(1).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(hub.Connect(2).status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_OK((*a)->Send(at::zeros({3}), 1));
  at::Tensor wrong = at::zeros({4});
  EXPECT_THAT(Msg((*b)->Recv(wrong, 0)), HasSubstr("expected [4] Float"));
  EXPECT_EQ((*a)->Send(at::zeros({3}), 0).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FakeGroupRegistryTest, GroupsAreKeyedByNameAndSized) {
  FakeGroupRegistry registry;
  auto a = registry.Connect("cfg:0,1", 0, 2);
  ASSERT_TRUE(a.ok());
  EXPECT_THAT(Msg(registry.Connect("cfg:0,1", 1, 4).status()),
              HasSubstr("has size 2 but rank 1 asked for size 4"));
  auto c = registry.Connect("tp:0,1", 0, 2);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(registry.GroupNames(),
            (std::vector<std::string>{"cfg:0,1", "tp:0,1"}));
}

}  // namespace
}  // namespace dserve::parallel::testing
