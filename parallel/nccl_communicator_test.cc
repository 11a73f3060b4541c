// NCCL ops in one process per GPU (up to 4). Needs --config=cuda, a CUDA
// LibTorch (DSERVE_LIBTORCH) and at least one GPU; tagged manual.

#include "parallel/nccl_communicator.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "parallel/communicator.h"
#include "parallel/testing/multiprocess.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::parallel {
namespace {

#define ASSERT_OK(expr)                   \
  do {                                    \
    const absl::Status status_ = (expr);  \
    ASSERT_TRUE(status_.ok()) << status_; \
  } while (0)

TEST(NcclCommunicatorTest, EveryOpOnEveryGpu) {
  int gpus = 0;
  if (cudaGetDeviceCount(&gpus) != cudaSuccess || gpus == 0) {
    GTEST_SKIP() << "no CUDA device";
  }
  const int world_size = std::min(gpus, 4);
  absl::Status run = testing::RunRanks(world_size, [](int rank, int world,
                                                      auto store) {
    at::set_num_threads(1);
    NcclOptions options;
    options.cuda_device = rank;
    options.timeout = std::chrono::seconds(60);
    auto comm = CreateNcclCommunicator(store, "nccl_test", rank, world, options);
    ASSERT_TRUE(comm.ok()) << comm.status();
    Communicator& c = **comm;
    const auto gpu = at::TensorOptions().device(at::kCUDA, rank);
    const int64_t w = world;

    at::Tensor b = rank == 0 ? at::arange(6, gpu.dtype(at::kFloat))
                             : at::zeros({6}, gpu.dtype(at::kFloat));
    ASSERT_OK(c.Broadcast(b, 0));
    EXPECT_TRUE(b.cpu().equal(at::arange(6, at::kFloat)));

    at::Tensor r = at::full({4}, rank + 1.0, gpu.dtype(at::kBFloat16));
    ASSERT_OK(c.AllReduceSum(r));
    EXPECT_TRUE(r.cpu().equal(at::full({4}, w * (w + 1) / 2.0, at::kBFloat16)));

    at::Tensor in = at::full({2, 3}, static_cast<double>(rank), gpu);
    at::Tensor out = at::empty({2 * w, 3}, gpu);
    ASSERT_OK(c.AllGather(in, out));
    for (int k = 0; k < world; ++k) {
      EXPECT_TRUE(out.cpu().narrow(0, 2 * k, 2).eq(k).all().item<bool>());
    }

    at::Tensor a2a_in = at::empty({w, 5}, gpu);
    for (int j = 0; j < world; ++j) a2a_in[j].fill_(100 * rank + j);
    at::Tensor a2a_out = at::empty_like(a2a_in);
    ASSERT_OK(c.AllToAll(a2a_in, a2a_out));
    for (int j = 0; j < world; ++j) {
      EXPECT_TRUE(a2a_out.cpu()[j].eq(100 * j + rank).all().item<bool>());
    }

    if (world > 1) {
      at::Tensor token = at::full({64}, static_cast<double>(rank), gpu);
      at::Tensor incoming = at::empty_like(token);
      ASSERT_OK(c.SendRecv(token, (rank + 1) % world, incoming,
                           (rank + world - 1) % world));
      EXPECT_EQ(incoming.cpu()[0].item<float>(), (rank + world - 1) % world);
    }
    ASSERT_OK(c.Barrier());
    EXPECT_EQ(c.backend_name(), "nccl");
  });
  EXPECT_TRUE(run.ok()) << run;
}

}  // namespace
}  // namespace dserve::parallel
