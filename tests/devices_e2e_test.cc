// --devices end to end on this machine (CPU-only LibTorch, no GPU): a GPU
// the workers cannot reach stops the server at start-up, before any replica
// spawns, with a FAILED_PRECONDITION naming what is missing; a device count
// that does not match the mesh is refused in TeleFuser's words; an explicit
// CPU list starts a 2-rank replica (one --device per rank reaches the
// workers).

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"

namespace dserve::tests {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

CapturedRun RunServer(const std::vector<std::string>& flags) {
  absl::StatusOr<std::string> server = RunfilePath("server/dserve_server");
  absl::StatusOr<std::string> worker = RunfilePath("worker/dserve_worker");
  EXPECT_TRUE(server.ok() && worker.ok());
  absl::StatusOr<int> port = PickFreePort();
  EXPECT_TRUE(port.ok());
  std::vector<std::string> argv = {*server, "--port=" + std::to_string(*port),
                                   "--worker_binary=" + *worker};
  argv.insert(argv.end(), flags.begin(), flags.end());
  absl::StatusOr<CapturedRun> run = RunAndCapture(argv, absl::Seconds(60));
  EXPECT_TRUE(run.ok()) << run.status();
  if (!run.ok()) return CapturedRun{};
  // The server logs to stdout; check the two streams as one.
  run->stderr_text = run->stdout_text + run->stderr_text;
  return *run;
}

TEST(DevicesE2eTest, CudaWithoutCudaFailsAtStartBeforeAnyReplica) {
  const CapturedRun run = RunServer({"--devices=cuda:0", "--replicas=1"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.stderr_text,
              HasSubstr("FAILED_PRECONDITION: --devices names cuda:0 but no "
                        "CUDA device is usable"));
  EXPECT_THAT(run.stderr_text, HasSubstr("built without CUDA"));
  // Nothing was spawned: the replica logs "rank 0 started as pid" first.
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("started as pid")));
}

TEST(DevicesE2eTest, CountThatDoesNotMatchTheMeshIsRefused) {
  const CapturedRun run =
      RunServer({"--devices=cpu,cpu,cpu,cpu", "--mesh=cfg=2"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.stderr_text,
              HasSubstr("INVALID_ARGUMENT: device num 4 and world size 2 not "
                        "match"));
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("started as pid")));
}

TEST(DevicesE2eTest, NcclOnCpuRanksIsRefused) {
  const CapturedRun run = RunServer({"--devices=cpu", "--comm=nccl"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.stderr_text,
              HasSubstr("--comm=nccl needs a CUDA device for every rank"));
}

TEST(DevicesE2eTest, ExplicitCpuListStartsTheReplica) {
  ServerProcess::Options options;
  options.replicas = 1;
  options.extra_flags = {"--devices=cpu,cpu", "--mesh=cfg=2", "--dtype=fp32",
                         "--comm=gloo"};
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = dserve::v1::DiffusionService::NewStub((*server)->channel());
  grpc::ClientContext context;
  dserve::v1::ServerInfo info;
  ASSERT_TRUE(
      stub->GetServerInfo(&context, dserve::v1::GetServerInfoRequest(), &info)
          .ok());
  ASSERT_EQ(info.replicas_size(), 1);
  EXPECT_EQ(info.replicas(0).world_size(), 2);
  // Each rank reports the device the server gave it (GetServerInfo).
  ASSERT_EQ(info.replicas(0).ranks_size(), 2) << info.DebugString();
  for (int r = 0; r < 2; ++r) {
    const dserve::v1::RankDevice& d = info.replicas(0).ranks(r);
    EXPECT_EQ(d.rank(), r);
    EXPECT_EQ(d.device(), "cpu");
    EXPECT_EQ(d.dtype(), "fp32");
    EXPECT_EQ(d.comm(), "gloo");
    EXPECT_FALSE(d.gpu_memory_available());
    EXPECT_EQ(d.gpu_memory_total_bytes(), 0);
  }
  EXPECT_EQ(*(*server)->Stop(), 0);
}

}  // namespace
}  // namespace dserve::tests
