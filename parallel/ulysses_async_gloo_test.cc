// Asynchronous Ulysses (UlyssesScatterHeadsAsync over Gloo's AllToAllAsync)
// in real processes: the overlapped q/k/v scatter must give exactly the
// tensors of three blocking scatters, move the same bytes, and, with local
// attention and the blocking head gather, the unsharded attention.

#include <chrono>
#include <cmath>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "parallel/communicator.h"
#include "parallel/gloo_communicator.h"
#include "parallel/testing/multiprocess.h"
#include "parallel/ulysses_comm.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::parallel {
namespace {

at::Tensor Attention(const at::Tensor& q, const at::Tensor& k,
                     const at::Tensor& v) {
  at::Tensor scores = at::einsum("bqhd,bkhd->bhqk", {q, k}) /
                      std::sqrt(static_cast<double>(q.size(3)));
  return at::einsum("bhqk,bkhd->bqhd", {at::softmax(scores, -1), v});
}

std::unique_ptr<Communicator> Connect(int rank, int world,
                                      const c10::intrusive_ptr<c10d::Store>& store) {
  auto comm = CreateGlooCommunicator(store, "ulysses", rank, world,
                                     std::chrono::seconds(20));
  EXPECT_TRUE(comm.ok()) << comm.status();
  return comm.ok() ? *std::move(comm) : nullptr;
}

void CheckAsyncScatter(int rank, int u,
                       const c10::intrusive_ptr<c10d::Store>& store) {
  at::set_num_threads(1);
  std::unique_ptr<Communicator> comm = Connect(rank, u, store);
  ASSERT_NE(comm, nullptr);
  // Same inputs on every rank; B 2, S 12, H 8, D 8 (u in {2, 4} divides S
  // and H). v has a different head_dim, so per-tensor shapes are honoured.
  at::manual_seed(11);
  const at::Tensor q = at::randn({2, 12, 8, 8});
  const at::Tensor k = at::randn({2, 12, 8, 8});
  const at::Tensor v = at::randn({2, 12, 8, 4});
  const int64_t s_local = 12 / u;
  auto shard = [&](const at::Tensor& t) {
    return t.narrow(1, rank * s_local, s_local).contiguous();
  };
  const std::vector<at::Tensor> shards = {shard(q), shard(k), shard(v)};

  std::vector<at::Tensor> sync;
  for (const at::Tensor& x : shards) {
    absl::StatusOr<at::Tensor> heads = UlyssesScatterHeads(*comm, x);
    ASSERT_TRUE(heads.ok()) << heads.status();
    sync.push_back(*heads);
  }
  const int64_t sync_bytes = comm->stats().all_to_all_bytes;
  comm->ResetStats();

  absl::StatusOr<std::vector<at::Tensor>> async =
      UlyssesScatterHeadsAsync(*comm, shards);
  ASSERT_TRUE(async.ok()) << async.status();
  ASSERT_EQ(async->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE((*async)[i].equal(sync[i])) << "tensor " << i << " rank "
                                            << rank;
  }
  EXPECT_EQ(comm->stats().all_to_all_bytes, sync_bytes);

  const at::Tensor attended =
      Attention((*async)[0], (*async)[1], (*async)[2]).contiguous();
  absl::StatusOr<at::Tensor> out = UlyssesGatherHeads(*comm, attended);
  ASSERT_TRUE(out.ok()) << out.status();
  const at::Tensor want = shard(Attention(q, k, v));
  const double err = (*out - want).abs().max().item<double>() /
                     want.abs().max().item<double>();
  EXPECT_LT(err, 1e-5) << "u " << u << " rank " << rank;
}

TEST(UlyssesAsyncGlooTest, Ulysses2MatchesSyncAndUnsharded) {
  absl::Status run = testing::RunRanks(
      2, [](int rank, int, auto store) { CheckAsyncScatter(rank, 2, store); });
  EXPECT_TRUE(run.ok()) << run;
}

TEST(UlyssesAsyncGlooTest, Ulysses4MatchesSyncAndUnsharded) {
  absl::Status run = testing::RunRanks(
      4, [](int rank, int, auto store) { CheckAsyncScatter(rank, 4, store); });
  EXPECT_TRUE(run.ok()) << run;
}

// A blocking collective issued while an AllToAllAsync is in flight runs
// beside it (the contract of communicator.h), and both results are right.
TEST(UlyssesAsyncGlooTest, BlockingCallWhileAllToAllInFlight) {
  absl::Status run = testing::RunRanks(2, [](int rank, int world, auto store) {
    at::set_num_threads(1);
    std::unique_ptr<Communicator> comm = Connect(rank, world, store);
    ASSERT_NE(comm, nullptr);
    // Chunk j of rank r holds 10*r + j; after the exchange chunk j holds
    // 10*j + r.
    at::Tensor in = (at::arange(world, at::kFloat) + 10.0 * rank)
                        .repeat_interleave(3)
                        .contiguous();
    at::Tensor out = at::empty_like(in);
    absl::StatusOr<std::unique_ptr<PendingOp>> op =
        comm->AllToAllAsync(in, out);
    ASSERT_TRUE(op.ok()) << op.status();
    at::Tensor sum = at::full({4}, static_cast<float>(rank + 1));
    ASSERT_TRUE(comm->AllReduceSum(sum).ok());
    ASSERT_TRUE((*op)->Wait().ok());
    EXPECT_TRUE(sum.equal(at::full({4}, 3.0f)));
    at::Tensor want =
        (at::arange(world, at::kFloat) * 10.0 + rank).repeat_interleave(3);
    EXPECT_TRUE(out.equal(want)) << out;
    // A second Wait is a caller bug, reported rather than hanging.
    EXPECT_EQ((*op)->Wait().code(), absl::StatusCode::kFailedPrecondition);
  });
  EXPECT_TRUE(run.ok()) << run;
}

}  // namespace
}  // namespace dserve::parallel
