#include "worker/mesh_backend.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dserve::worker {
namespace {

TEST(ResolveCommBackendTest, Table) {
  struct Case {
    std::string comm;
    bool cuda, have_nccl;
    absl::StatusCode code;
    std::string backend;  // or a part of the message
  };
  const std::vector<Case> cases = {
      {"auto", false, false, absl::StatusCode::kOk, "gloo"},
      {"auto", false, true, absl::StatusCode::kOk, "gloo"},
      {"auto", true, false, absl::StatusCode::kOk, "gloo"},
      {"auto", true, true, absl::StatusCode::kOk, "nccl"},
      {"gloo", true, true, absl::StatusCode::kOk, "gloo"},
      {"nccl", true, true, absl::StatusCode::kOk, "nccl"},
      {"nccl", false, true, absl::StatusCode::kInvalidArgument,
       "--comm=nccl needs a CUDA device"},
      {"nccl", true, false, absl::StatusCode::kFailedPrecondition,
       "built without NCCL"},
      {"mpi", true, true, absl::StatusCode::kInvalidArgument,
       "--comm='mpi' is not a backend"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> got =
        ResolveCommBackend(c.comm, c.cuda, c.have_nccl);
    SCOPED_TRACE(c.comm + (c.cuda ? " cuda" : " cpu") +
                 (c.have_nccl ? " nccl-build" : " no-nccl-build"));
    EXPECT_EQ(got.status().code(), c.code) << got.status();
    if (got.ok()) {
      EXPECT_EQ(*got, c.backend);
    } else {
      EXPECT_NE(got.status().message().find(c.backend), std::string::npos)
          << got.status();
    }
  }
}

TEST(MeshCommunicatorFactoryTest, GlooOnCpuAndNcclOnlyWhereBuilt) {
  EXPECT_TRUE(MeshCommunicatorFactory("gloo", at::Device(at::kCPU),
                                      std::chrono::seconds(5))
                  .ok());
  // Staged Gloo for a CUDA rank needs no GPU to be built (only to be used).
  EXPECT_TRUE(MeshCommunicatorFactory("gloo", at::Device(at::kCUDA, 0),
                                      std::chrono::seconds(5))
                  .ok());
  absl::StatusOr<parallel::CommunicatorFactory> nccl = MeshCommunicatorFactory(
      "nccl", at::Device(at::kCUDA, 0), std::chrono::seconds(5));
  EXPECT_EQ(nccl.ok(), BuiltWithNccl()) << nccl.status();
}

}  // namespace
}  // namespace dserve::worker
