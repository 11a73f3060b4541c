// Every Communicator op over real Gloo in 2 and 4 processes (the test binary
// re-launches itself per rank; see parallel/testing/multiprocess.h).

#include "parallel/gloo_communicator.h"

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "parallel/communicator.h"
#include "parallel/testing/multiprocess.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::parallel {
namespace {

using ::testing::HasSubstr;
using testing::RunRanks;

constexpr std::chrono::milliseconds kTimeout{20000};

#define ASSERT_OK(expr)                   \
  do {                                    \
    const absl::Status status_ = (expr);  \
    ASSERT_TRUE(status_.ok()) << status_; \
  } while (0)
#define EXPECT_OK(expr)                   \
  do {                                    \
    const absl::Status status_ = (expr);  \
    EXPECT_TRUE(status_.ok()) << status_; \
  } while (0)

std::unique_ptr<Communicator> MakeGroup(
    const c10::intrusive_ptr<c10d::Store>& store, const std::string& name,
    int rank, int size) {
  auto comm = CreateGlooCommunicator(store, name, rank, size, kTimeout);
  EXPECT_TRUE(comm.ok()) << comm.status();
  return comm.ok() ? std::move(*comm) : nullptr;
}

class GlooCommunicatorTest : public ::testing::TestWithParam<int> {};

TEST_P(GlooCommunicatorTest, EveryOpMovesTheRightDataAndCountsBytes) {
  const int world_size = GetParam();
  absl::Status run = RunRanks(world_size, [](int rank, int world, auto store) {
    at::set_num_threads(1);
    auto comm = MakeGroup(store, "world", rank, world);
    ASSERT_NE(comm, nullptr);
    EXPECT_EQ(comm->rank(), rank);
    EXPECT_EQ(comm->size(), world);
    EXPECT_EQ(comm->backend_name(), "gloo");
    const int64_t w = world;

    // Broadcast from the last rank: 6 floats = 24 bytes.
    const int root = world - 1;
    at::Tensor b = rank == root ? at::arange(6, at::kFloat).mul(1.5)
                                : at::zeros({6}, at::kFloat);
    ASSERT_OK(comm->Broadcast(b, root));
    EXPECT_TRUE(b.equal(at::arange(6, at::kFloat).mul(1.5)));
    EXPECT_EQ(comm->stats().broadcast_bytes, rank == root ? (w - 1) * 24 : 0);

    // AllReduceSum: 3x2 floats of (rank + 1) sum to w(w+1)/2.
    at::Tensor r = at::full({3, 2}, rank + 1.0, at::kFloat);
    ASSERT_OK(comm->AllReduceSum(r));
    EXPECT_TRUE(r.equal(at::full({3, 2}, w * (w + 1) / 2.0, at::kFloat)));
    EXPECT_EQ(comm->stats().all_reduce_bytes, 2 * (w - 1) * 24 / w);

    // AllGather: rank k contributes rows k*10 + [0, 1].
    at::Tensor in = at::arange(2, at::kLong).add(rank * 10).view({2, 1}).expand({2, 3}).contiguous();
    at::Tensor gathered = at::empty({2 * w, 3}, at::kLong);
    ASSERT_OK(comm->AllGather(in, gathered));
    for (int k = 0; k < world; ++k) {
      EXPECT_EQ(gathered[2 * k][0].item<int64_t>(), k * 10);
      EXPECT_EQ(gathered[2 * k + 1][2].item<int64_t>(), k * 10 + 1);
    }
    EXPECT_EQ(comm->stats().all_gather_bytes, (w - 1) * in.nbytes());

    // AllToAll: chunk j of rank k holds 100*k + j; afterwards chunk j of
    // rank k holds what rank j sent to k, 100*j + k.
    at::Tensor a2a_in = at::empty({2 * w, 4}, at::kFloat);
    for (int j = 0; j < world; ++j) a2a_in.narrow(0, 2 * j, 2).fill_(100 * rank + j);
    at::Tensor a2a_out = at::empty_like(a2a_in);
    ASSERT_OK(comm->AllToAll(a2a_in, a2a_out));
    for (int j = 0; j < world; ++j) {
      EXPECT_TRUE(a2a_out.narrow(0, 2 * j, 2).eq(100 * j + rank).all().item<bool>())
          << "chunk " << j << " of rank " << rank << ": " << a2a_out;
    }
    EXPECT_EQ(comm->stats().all_to_all_bytes, (w - 1) * a2a_in.nbytes() / w);

    // Ring exchange: everyone sends first, then receives (Gloo sends do not
    // wait for the matching receive). Two rounds check tag sequencing.
    const int next = (rank + 1) % world;
    const int prev = (rank + world - 1) % world;
    for (int round = 0; round < 2; ++round) {
      at::Tensor msg = at::full({1000}, 1000.0 * round + rank, at::kFloat);
      ASSERT_OK(comm->Send(msg, next));
      msg.fill_(-1);  // Send is buffered: the caller may reuse the tensor
      at::Tensor got = at::zeros({1000}, at::kFloat);
      ASSERT_OK(comm->Recv(got, prev));
      EXPECT_TRUE(got.eq(1000.0 * round + prev).all().item<bool>());
    }
    EXPECT_EQ(comm->stats().send_bytes, 2 * 4000);

    // The same rotation as one exchange per step, twice around the ring.
    at::Tensor token = at::full({500}, static_cast<double>(rank), at::kDouble);
    for (int step = 1; step <= 2 * world; ++step) {
      at::Tensor incoming = at::empty_like(token);
      ASSERT_OK(comm->SendRecv(token, next, incoming, prev));
      token = incoming;
      EXPECT_EQ(token[0].item<double>(), (rank - step % world + world) % world)
          << "step " << step;
    }
    EXPECT_EQ(comm->stats().send_bytes, 2 * 4000 + 2 * w * 4000);

    ASSERT_OK(comm->Barrier());
    // Broadcast, AllReduce, AllGather, AllToAll, 2 Send, 2 Recv,
    // 2w SendRecv (a Send and a Recv each), Barrier.
    EXPECT_EQ(comm->stats().calls, 9 + 4 * w);
    comm->ResetStats();
    EXPECT_EQ(comm->stats().total_bytes(), 0);
  });
  EXPECT_TRUE(run.ok()) << run;
}

TEST_P(GlooCommunicatorTest, Bfloat16RoundTripsThroughEveryOp) {
  const int world_size = GetParam();
  absl::Status run = RunRanks(world_size, [](int rank, int world, auto store) {
    at::set_num_threads(1);
    auto comm = MakeGroup(store, "bf16", rank, world);
    ASSERT_NE(comm, nullptr);
    const int64_t w = world;
    auto bf16 = at::TensorOptions().dtype(at::kBFloat16);

    at::Tensor r = at::full({8}, 0.5 * (rank + 1), bf16);
    ASSERT_OK(comm->AllReduceSum(r));
    EXPECT_EQ(r.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(r.equal(at::full({8}, 0.5 * w * (w + 1) / 2, bf16)));
    // Bytes are counted in the caller's dtype, not the fp32 staging copy.
    EXPECT_EQ(comm->stats().all_reduce_bytes, 2 * (w - 1) * 16 / w);

    at::Tensor b = rank == 0 ? at::full({4}, 3.25, bf16) : at::zeros({4}, bf16);
    ASSERT_OK(comm->Broadcast(b, 0));
    EXPECT_TRUE(b.equal(at::full({4}, 3.25, bf16)));

    at::Tensor in = at::full({1, 2}, rank + 0.25, bf16);
    at::Tensor out = at::empty({w, 2}, bf16);
    ASSERT_OK(comm->AllGather(in, out));
    for (int k = 0; k < world; ++k) {
      EXPECT_EQ(out[k][1].item<float>(), k + 0.25f);
    }

    at::Tensor a2a_in = at::empty({w}, bf16);
    for (int j = 0; j < world; ++j) a2a_in[j].fill_(10 * rank + j);
    at::Tensor a2a_out = at::empty_like(a2a_in);
    ASSERT_OK(comm->AllToAll(a2a_in, a2a_out));
    for (int j = 0; j < world; ++j) {
      EXPECT_EQ(a2a_out[j].item<float>(), 10.0f * j + rank);
    }

    at::Tensor msg = at::full({3}, rank + 0.5, bf16);
    ASSERT_OK(comm->Send(msg, (rank + 1) % world));
    at::Tensor got = at::empty({3}, bf16);
    ASSERT_OK(comm->Recv(got, (rank + world - 1) % world));
    EXPECT_EQ(got[2].item<float>(), (rank + world - 1) % world + 0.5f);
  });
  EXPECT_TRUE(run.ok()) << run;
}

// Several groups share one TCPStore through PrefixStores, as the mesh does.
TEST_P(GlooCommunicatorTest, GroupsShareOneStore) {
  const int world_size = GetParam();
  absl::Status run = RunRanks(world_size, [](int rank, int world, auto store) {
    at::set_num_threads(1);
    auto all = MakeGroup(store, "all", rank, world);
    // Pairs {0,1}, {2,3}: same group-local ranks, different names.
    auto pair = MakeGroup(store, absl::StrCat("pair", rank / 2), rank % 2, 2);
    ASSERT_NE(all, nullptr);
    ASSERT_NE(pair, nullptr);
    at::Tensor t = at::full({2}, static_cast<double>(rank), at::kDouble);
    ASSERT_OK(pair->AllReduceSum(t));
    const int first = rank / 2 * 2;
    EXPECT_EQ(t[0].item<double>(), first + first + 1);
    at::Tensor s = at::ones({2}, at::kDouble);
    ASSERT_OK(all->AllReduceSum(s));
    EXPECT_EQ(s[1].item<double>(), world);
  });
  EXPECT_TRUE(run.ok()) << run;
}

TEST_P(GlooCommunicatorTest, RejectsBadArgumentsBeforeCommunicating) {
  const int world_size = GetParam();
  absl::Status run = RunRanks(world_size, [](int rank, int world, auto store) {
    at::set_num_threads(1);
    auto comm = MakeGroup(store, "bad", rank, world);
    ASSERT_NE(comm, nullptr);
    at::Tensor t = at::zeros({world, 2});
    absl::Status self = comm->Send(t, rank);
    EXPECT_EQ(self.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(self.message()), HasSubstr("peer"));
    at::Tensor wrong = at::zeros({world + 1, 2});
    EXPECT_EQ(comm->AllGather(t, wrong).code(),
              absl::StatusCode::kInvalidArgument);
    at::Tensor odd = at::zeros({world * 2 + 1});
    at::Tensor odd_out = at::zeros({world * 2 + 1});
    EXPECT_THAT(std::string(comm->AllToAll(odd, odd_out).message()),
                HasSubstr("multiple of the group size"));
    EXPECT_EQ(comm->Broadcast(t, world).code(),
              absl::StatusCode::kInvalidArgument);
    at::Tensor strided = at::zeros({4, 4}).t();
    EXPECT_THAT(std::string(comm->AllReduceSum(strided).message()),
                HasSubstr("not contiguous"));
    EXPECT_EQ(comm->stats().calls, 0);
    // The group still works after rejected calls.
    EXPECT_OK(comm->Barrier());
  });
  EXPECT_TRUE(run.ok()) << run;
}

INSTANTIATE_TEST_SUITE_P(Worlds, GlooCommunicatorTest, ::testing::Values(2, 4),
                         [](const auto& info) {
                           return absl::StrCat("world", info.param);
                         });

TEST(CreateGlooCommunicatorTest, ValidatesArguments) {
  auto null_store = CreateGlooCommunicator({}, "g", 0, 1, kTimeout);
  EXPECT_EQ(null_store.status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status run = RunRanks(1, [](int rank, int world, auto store) {
    auto bad_rank = CreateGlooCommunicator(store, "g", 2, 2, kTimeout);
    EXPECT_THAT(std::string(bad_rank.status().message()),
                HasSubstr("group_rank 2 is out of range; allowed range is [0, 2)"));
    auto bad_name = CreateGlooCommunicator(store, "", 0, 1, kTimeout);
    EXPECT_EQ(bad_name.status().code(), absl::StatusCode::kInvalidArgument);
    // A group of one works without peers.
    auto solo = CreateGlooCommunicator(store, "solo", 0, 1, kTimeout);
    ASSERT_TRUE(solo.ok()) << solo.status();
    at::Tensor t = at::ones({2});
    EXPECT_OK((*solo)->AllReduceSum(t));
    EXPECT_TRUE(t.equal(at::ones({2})));
  });
  EXPECT_TRUE(run.ok()) << run;
}

TEST(CreateGlooCommunicatorTest, MissingPeerTimesOut) {
  absl::Status run = RunRanks(1, [](int rank, int world, auto store) {
    // Rank 1 of 2 never arrives.
    auto comm = CreateGlooCommunicator(store, "lonely", 0, 2,
                                       std::chrono::milliseconds(1500));
    EXPECT_FALSE(comm.ok());
    EXPECT_THAT(std::string(comm.status().message()),
                HasSubstr("gloo rendezvous of group \"lonely\""));
  });
  EXPECT_TRUE(run.ok()) << run;
}

}  // namespace
}  // namespace dserve::parallel
