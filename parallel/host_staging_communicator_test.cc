#include "parallel/host_staging_communicator.h"

#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "parallel/testing/fake_communicator.h"
#include <ATen/ATen.h>
#include <ATen/Context.h>

namespace dserve::parallel {
namespace {

// Two ranks in two threads, each with a wrapped fake communicator; `device`
// is where the ranks' tensors live (staging copies only for non-CPU ones).
void RunTwoRanks(const at::Device& device) {
  testing::FakeCommunicatorHub hub(2);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < 2; ++r) {
    absl::StatusOr<std::unique_ptr<Communicator>> c = hub.Connect(r);
    ASSERT_TRUE(c.ok()) << c.status();
    comms.push_back(WrapWithHostStaging(*std::move(c)));
  }
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      Communicator& comm = *comms[r];
      const auto opts = at::TensorOptions().device(device);
      // AllReduceSum in place: the caller's tensor holds the sum.
      at::Tensor t = at::full({4}, r + 1.0, opts);
      const void* before = t.data_ptr();
      ASSERT_TRUE(comm.AllReduceSum(t).ok());
      EXPECT_EQ(t.data_ptr(), before);
      EXPECT_TRUE(t.device() == device);
      EXPECT_TRUE(at::equal(t.cpu(), at::full({4}, 3.0)));
      // Broadcast from rank 1.
      at::Tensor b = at::full({2}, r * 10.0, opts);
      ASSERT_TRUE(comm.Broadcast(b, 1).ok());
      EXPECT_TRUE(at::equal(b.cpu(), at::full({2}, 10.0)));
      // AllToAll and its async form: chunk j goes to rank j.
      at::Tensor in = at::arange(2, opts.dtype(at::kFloat)) + 10 * r;
      at::Tensor out = at::empty_like(in);
      ASSERT_TRUE(comm.AllToAll(in, out).ok());
      EXPECT_TRUE(at::equal(out.cpu(), at::tensor({0.0f + r, 10.0f + r})));
      at::Tensor out2 = at::empty_like(in);
      auto op = comm.AllToAllAsync(in, out2);
      ASSERT_TRUE(op.ok()) << op.status();
      ASSERT_TRUE((*op)->Wait().ok());
      EXPECT_TRUE(at::equal(out2.cpu(), out.cpu()));
      // AllGather.
      at::Tensor g = at::empty({2, 1}, opts);
      ASSERT_TRUE(comm.AllGather(at::full({1, 1}, r * 1.0, opts), g).ok());
      EXPECT_TRUE(at::equal(g.cpu(), at::tensor({0.0f, 1.0f}).view({2, 1})));
      // SendRecv around the ring of two.
      at::Tensor recv = at::empty({3}, opts);
      ASSERT_TRUE(
          comm.SendRecv(at::full({3}, r * 1.0, opts), 1 - r, recv, 1 - r).ok());
      EXPECT_TRUE(at::equal(recv.cpu(), at::full({3}, (1 - r) * 1.0)));
      ASSERT_TRUE(comm.Barrier().ok());
      // The wrapper counts what the wrapped communicator moved, and resets.
      EXPECT_GT(comm.stats().calls, 0);
      EXPECT_GT(comm.stats().total_bytes(), 0);
      comm.ResetStats();
      EXPECT_EQ(comm.stats().calls, 0);
      ASSERT_TRUE(comm.Barrier().ok());
      EXPECT_EQ(comm.stats().calls, 1);
    });
  }
  for (auto& t : threads) t.join();
}

TEST(HostStagingCommunicatorTest, CpuTensorsPassThrough) {
  RunTwoRanks(at::Device(at::kCPU));
}

// The staging copies themselves: needs a CUDA LibTorch and a GPU (the GPU
// session's unit stage runs it; skipped here).
TEST(HostStagingCommunicatorTest, CudaTensorsAreStagedThroughTheHost) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device in this LibTorch/machine";
  RunTwoRanks(at::Device(at::kCUDA, 0));
}

TEST(HostStagingCommunicatorTest, NamesTheWrappedBackend) {
  testing::FakeCommunicatorHub hub(1);
  auto c = hub.Connect(0);
  ASSERT_TRUE(c.ok());
  auto wrapped = WrapWithHostStaging(*std::move(c));
  EXPECT_EQ(wrapped->backend_name(), "fake+host_staging");
  EXPECT_EQ(wrapped->size(), 1);
}

}  // namespace
}  // namespace dserve::parallel
